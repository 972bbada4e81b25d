"""Built-in functions → closures. Arity and string-literal checks happen here, at compile time.

String functions on literals are computed without guest memory; given an address they read the
guest (capability ``memory``). ``printf``'s ``%s`` of ``$time`` or ``$date`` prints the clock's
text (HyperDbg's format) and needs no memory. ``memcpy(&a, &b, n)`` between variables copies the
low ``n`` bytes (at most 8) and needs nothing; any other memory function needs ``memory``.
"""

from __future__ import annotations

from collections.abc import Callable

from agent.model import Capability
from agent.script import nodes as n
from agent.script.errors import ScriptAbort
from agent.script.exprs import Ev, ExprCompiler
from agent.script.fmt import Conversion, FormatError, parse_format, render
from agent.script.names import FUNCTIONS
from agent.script.runtime import CLOCK_HANDLES, MASK, Machine, clock_text

__all__ = ["compile_builtin"]

_SIZES = {"db": 1, "dw": 2, "dd": 4, "dq": 8, "poi": 8, "eb": 1, "ed": 4, "eq": 8}
MAX_STRING = 4096  # bytes read from the guest for one string argument


def compile_builtin(c: n.Call, ec: ExprCompiler) -> Ev:
    fn = FUNCTIONS.get(c.name)
    if fn is None:
        raise ec.fail(f"unknown function '{c.name}'", c.name, c)
    if fn.arity is not None and len(c.args) != fn.arity:
        message = f"function '{c.name}' takes {fn.arity} arguments, {len(c.args)} given"
        raise ec.fail(message, c.name, c)
    literal = all(isinstance(a, n.Str) for a in c.args if not isinstance(a, n.Num))
    if fn.strings and literal:
        return _string_call(c)
    if c.name == "memcpy" and all(isinstance(a, n.Var) and a.scope is n.Scope.ADDR
                                  for a in c.args[:2]):  # fmt: skip
        return _var_copy(c, ec)
    if fn.needs is not None:
        ec.need(fn.needs, f"{c.name}()", c)
    if c.name == "printf":
        return _printf(c, ec)
    if c.name.startswith("event_") and c.name != "event_sc" and isinstance(c.args[0], n.Str):
        hook_id = c.args[0].value  # event_enable("in-3f8-785de70e"): our hook ids are words
        return lambda m, f: _event(m, c.name, hook_id)
    args = [_arg(a, ec) for a in c.args]
    return _effect(c.name, args, c) if fn.needs is not Capability.MEMORY else _memory(c, args)


def _arg(a: n.Expr, ec: ExprCompiler) -> Ev:
    if isinstance(a, n.Str):
        raise ec.fail("a string is not allowed here", a.value[:20] or '""', a)
    return ec.compile(a)


def _effect(name: str, args: list[Ev], c: n.Call) -> Ev:
    if name == "print":
        (x,) = args
        return lambda m, f: _write(m, f"{x(m, f):x}\n")
    if name == "event_sc":
        (x,) = args

        def short_circuit(m: Machine, f: list[int]) -> int:
            m.result.short_circuit = bool(x(m, f))
            return 0

        return short_circuit
    if name == "pause":
        return lambda m, f: _set_pause(m)
    (target,) = args  # event_enable / event_disable / event_clear (a HyperDbg-style number)
    return lambda m, f: _event(m, name, target(m, f))


def _event(m: Machine, name: str, target: int | str) -> int:
    m.result.events.append((name, target))
    return 0


def _write(m: Machine, text: str) -> int:
    m.write(text)
    return 0


def _set_pause(m: Machine) -> int:
    m.result.pause = True
    return 0


def _printf(c: n.Call, ec: ExprCompiler) -> Ev:
    if not c.args or not isinstance(c.args[0], n.Str):
        raise ec.fail("printf needs a format string first", "printf", c)
    try:
        pieces = parse_format(c.args[0].value)
    except FormatError as e:
        raise ec.fail(str(e), e.spec, c) from None
    convs = [p for p in pieces if isinstance(p, Conversion)]
    if len(convs) != len(c.args) - 1:
        message = f"printf format has {len(convs)} conversions for {len(c.args) - 1} arguments"
        raise ec.fail(message, "printf", c)
    values = iter(c.args[1:])
    parts = [
        (lambda m, f, text=piece: text)
        if isinstance(piece, str)
        else _piece(piece, next(values), ec)
        for piece in pieces
    ]

    def printf(m: Machine, f: list[int]) -> int:
        m.write("".join([part(m, f) for part in parts]))
        return 0

    return printf


Part = Callable[[Machine, list[int]], str]


def _piece(conv: Conversion, arg: n.Expr, ec: ExprCompiler) -> Part:
    """One conversion of a printf, as a function of the run giving its text."""
    if isinstance(arg, n.Str):
        text = render(conv, arg.value)
        return lambda m, f: text
    clock = _clock(arg)
    if conv.conv == "s" and clock:
        return lambda m, f: render(conv, clock_text(clock))  # the time or date now, as HyperDbg
    if conv.conv == "s":
        ec.need(Capability.MEMORY, "printf('%s' of an address)", arg)
        address, wide = ec.compile(arg), "w" in conv.spec
        return lambda m, f: render(conv, _read_string(m, address(m, f), wide))
    ev = ec.compile(arg)
    return lambda m, f: render(conv, ev(m, f))


def _clock(arg: n.Expr) -> str:
    """``"time"`` / ``"date"`` for ``$time`` / ``$date``, else ``""``."""
    if isinstance(arg, n.Var) and arg.scope is n.Scope.PSEUDO and arg.name in CLOCK_HANDLES:
        return arg.name
    return ""


def _compare(a: bytes, b: bytes) -> int:
    return 0 if a == b else (1 if a > b else MASK)  # MASK is -1: C's negative result


def _string_call(c: n.Call) -> Ev:
    strings = [a.value.encode("latin-1", "replace") for a in c.args if isinstance(a, n.Str)]
    count = next((a.value for a in c.args if isinstance(a, n.Num)), None)
    if c.name in ("strlen", "wcslen"):
        value = len(strings[0])
    elif count is not None:
        value = _compare(strings[0][:count], strings[1][:count])
    else:
        value = _compare(strings[0], strings[1])
    return lambda m, f: value


def _var_copy(c: n.Call, ec: ExprCompiler) -> Ev:
    dst, src = (a for a in c.args[:2] if isinstance(a, n.Var))
    size = ec.compile(c.args[2])
    read = ec.compile(n.Var(src.target or n.Scope.LOCAL, src.name, src.line, src.col))
    target = n.Var(dst.target or n.Scope.LOCAL, dst.name, dst.line, dst.col)
    current = ec.compile(target)
    store = ec.store(n.Assign(target, "=", None, dst.line, dst.col))

    def copy(m: Machine, f: list[int]) -> int:
        bits = min(size(m, f), 8) * 8
        keep = MASK ^ ((1 << bits) - 1)
        store(m, f, (current(m, f) & keep) | (read(m, f) & ((1 << bits) - 1)))
        return 0

    return copy


def _read_string(m: Machine, address: int, wide: bool) -> str:
    data = m.mem().read(address, MAX_STRING)
    if wide:
        text = data.decode("utf-16-le", "replace")
        return text.split("\0", 1)[0]
    return data.split(b"\0", 1)[0].decode("latin-1")


def _memory(c: n.Call, args: list[Ev]) -> Ev:
    name = c.name
    size = _SIZES.get(name, 8)
    if name in ("eb", "ed", "eq"):
        addr, val = args

        def write(m: Machine, f: list[int]) -> int:
            m.mem().write(addr(m, f), (val(m, f) & ((1 << size * 8) - 1)).to_bytes(size, "little"))
            return 1

        return write
    if name in ("poi", "db", "dw", "dd", "dq", "hi", "low", "check_address"):
        (addr,) = args
        if name in ("hi", "low"):  # the high / low 16 bits of the dword at the address
            shift = 16 if name == "hi" else 0
            return lambda m, f: (_read(m, addr(m, f), 4) >> shift) & 0xFFFF
        if name == "check_address":
            return lambda m, f: _readable(m, addr(m, f))
        return lambda m, f: _read(m, addr(m, f), size)
    return _interlocked(name, args)


def _read(m: Machine, address: int, size: int) -> int:
    return int.from_bytes(m.mem().read(address, size), "little")


def _readable(m: Machine, address: int) -> int:
    try:
        m.mem().read(address, 1)
    except ScriptAbort:
        return 0
    return 1


def _interlocked(name: str, args: list[Ev]) -> Ev:
    def run(m: Machine, f: list[int]) -> int:
        values = [a(m, f) for a in args]
        old = _read(m, values[0], 8)
        match name:
            case "interlocked_exchange":
                new = values[1]
            case "interlocked_exchange_add":
                new = (old + values[1]) & MASK
            case "interlocked_increment":
                new = (old + 1) & MASK
            case "interlocked_decrement":
                new = (old - 1) & MASK
            case _:  # interlocked_compare_exchange(address, exchange, comparand)
                new = values[1] if old == values[2] else old
        m.mem().write(values[0], new.to_bytes(8, "little"))
        return new if name in ("interlocked_increment", "interlocked_decrement") else old

    return run
