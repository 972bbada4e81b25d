"""Expressions → Python closures ``(machine, locals) -> int``: 64-bit unsigned and wrapping,
``/`` and ``%`` unsigned (a zero divisor aborts), ``<< >>`` by 64 or more give 0, ``< > <= >=``
signed, ``&&`` / ``||`` short-circuit to 0 or 1. Constant sub-expressions are folded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from agent.model import Capability
from agent.script import nodes as n
from agent.script.errors import ScriptError
from agent.script.names import PSEUDO, REGISTERS
from agent.script.runtime import MASK, MAX_DEPTH, Machine, signed

__all__ = ["Ev", "ExprCompiler", "FuncInfo"]

Ev = Callable[[Machine, list[int]], int]
Locals = list[int]


def _div(m: Machine, a: int, b: int) -> int:
    return a // b if b else m.abort("division by zero")


def _mod(m: Machine, a: int, b: int) -> int:
    return a % b if b else m.abort("division by zero")


_ARITH: dict[str, Callable[[Machine, int, int], int]] = {
    "+": lambda m, a, b: (a + b) & MASK,
    "-": lambda m, a, b: (a - b) & MASK,
    "*": lambda m, a, b: (a * b) & MASK,
    "/": _div,
    "%": _mod,
    "<<": lambda m, a, b: (a << b) & MASK if b < 64 else 0,
    ">>": lambda m, a, b: a >> b if b < 64 else 0,
    "&": lambda m, a, b: a & b,
    "|": lambda m, a, b: a | b,
    "^": lambda m, a, b: a ^ b,
    "==": lambda m, a, b: int(a == b),
    "!=": lambda m, a, b: int(a != b),
    "<": lambda m, a, b: int(signed(a) < signed(b)),
    ">": lambda m, a, b: int(signed(a) > signed(b)),
    "<=": lambda m, a, b: int(signed(a) <= signed(b)),
    ">=": lambda m, a, b: int(signed(a) >= signed(b)),
}
_UNARY: dict[str, Callable[[int], int]] = {
    "-": lambda a: -a & MASK,
    "+": lambda a: a,
    "~": lambda a: a ^ MASK,
    "!": lambda a: int(a == 0),
}


@dataclass(slots=True)
class FuncInfo:
    """A user function: its parameters, local slots and (once compiled) its body."""

    name: str
    params: tuple[str, ...]
    nslots: int = 0
    body: Callable[[Machine, Locals], int] | None = None


@dataclass(slots=True)
class ExprCompiler:
    """Compiles expressions of one scope (the main body or a function)."""

    slots: dict[str, int]
    funcs: dict[str, FuncInfo]
    needs: dict[Capability, str] = field(default_factory=dict)
    globals_read: dict[str, n.Var] = field(default_factory=dict)
    globals_written: set[str] = field(default_factory=set)
    builtin: Callable[[n.Call, ExprCompiler], Ev] | None = None

    def need(self, cap: Capability, what: str, node: n.Expr | n.Stmt) -> None:
        self.needs.setdefault(cap, f"{what} at line {node.line}, column {node.col}")

    def fail(self, message: str, token: str, node: n.Expr | n.Stmt) -> ScriptError:
        return ScriptError(message, token, node.line, node.col)

    def compile(self, e: n.Expr) -> Ev:
        match e:
            case n.Num(value=v):
                return lambda m, f: v
            case n.Str():
                raise self.fail("a string is allowed only as a function's argument", '"', e)
            case n.Var():
                return self.var(e)
            case n.Unary(op=op, operand=inner):
                return self.unary(op, inner)
            case n.Binary():
                return self.binary(e)
            case n.Call():
                return self.call(e)
        raise AssertionError(e)

    def const(self, e: n.Expr) -> int | None:
        """The value of a constant expression (None if it reads anything or would abort)."""
        match e:
            case n.Num(value=v):
                return v
            case n.Unary(op=op, operand=inner):
                inner_value = self.const(inner)
                return None if inner_value is None else _UNARY[op](inner_value)
            case n.Binary(op=op, left=left, right=right) if op not in ("&&", "||"):
                a, b = self.const(left), self.const(right)
                if a is None or b is None or (op in ("/", "%") and b == 0):
                    return None
                return _ARITH[op](None, a, b)  # type: ignore[arg-type]
        return None

    def unary(self, op: str, inner: n.Expr) -> Ev:
        fn, arg = _UNARY[op], self.compile(inner)
        if (v := self.const(n.Unary(op, inner))) is not None:
            return lambda m, f: v
        return lambda m, f: fn(arg(m, f))

    def binary(self, e: n.Binary) -> Ev:
        if (v := self.const(e)) is not None:
            return lambda m, f: v
        left, right = self.compile(e.left), self.compile(e.right)
        if e.op == "&&":
            return lambda m, f: int(bool(left(m, f)) and bool(right(m, f)))
        if e.op == "||":
            return lambda m, f: int(bool(left(m, f)) or bool(right(m, f)))
        op = _ARITH[e.op]
        return lambda m, f: op(m, left(m, f), right(m, f))

    def var(self, v: n.Var) -> Ev:
        name = v.name
        match v.scope:
            case n.Scope.LOCAL:
                if name not in self.slots:
                    message = f"unknown variable '{name}' (never assigned{_lower_hint(name, '@')})"
                    raise self.fail(message, name, v)
                slot = self.slots[name]
                return lambda m, f: f[slot]
            case n.Scope.GLOBAL:
                self.globals_read.setdefault(name, v)
                return lambda m, f: m.globals.get(name, 0)
            case n.Scope.REG:
                return self.register(v)
            case n.Scope.PSEUDO:
                return self.pseudo(v)
        raise self.fail("'&' gives an address only as a memcpy argument", "&" + name, v)

    def register(self, v: n.Var) -> Ev:
        part = REGISTERS.get(v.name)
        if part is None:
            message = f"unknown register '@{v.name}'{_lower_hint(v.name, '@', ' (')}"
            raise self.fail(message, "@" + v.name, v)
        base, shift, mask = part.base, part.shift, part.mask
        if shift == 0 and part.width == 64:
            return lambda m, f: m.regs.get(base, 0)
        return lambda m, f: (m.regs.get(base, 0) >> shift) & mask

    def pseudo(self, v: n.Var) -> Ev:
        name = v.name
        if name not in PSEUDO:
            message = f"unknown pseudo-register '${name}'{_lower_hint(name, '$', ' (')}"
            raise self.fail(message, "$" + name, v)
        if name == "ip":  # the instruction pointer unless given
            return lambda m, f: m.pseudo.get("ip", m.regs.get("rip", 0))
        return lambda m, f: m.pseudo.get(name, 0)

    def store(self, a: n.Assign) -> Callable[[Machine, Locals, int], None]:
        """A closure writing a value to ``a.target`` (a register part merges into its base)."""
        v = a.target
        name = v.name
        if v.scope is n.Scope.LOCAL:
            slot = self.slots[name]

            def local(m: Machine, f: Locals, value: int) -> None:
                f[slot] = value

            return local
        if v.scope is n.Scope.GLOBAL:
            self.globals_written.add(name)

            def global_(m: Machine, f: Locals, value: int) -> None:
                m.globals[name] = value

            return global_
        part = REGISTERS.get(name)
        if part is None:
            raise self.fail(f"unknown register '@{name}'", "@" + name, v)
        self.need(Capability.MODIFY, f"writing @{name}", a)
        base, shift, mask = part.base, part.shift, part.mask
        clear = MASK ^ (mask << shift)

        def register(m: Machine, f: Locals, value: int) -> None:
            m.regs[base] = (m.regs.get(base, 0) & clear) | ((value & mask) << shift)

        return register

    def call(self, c: n.Call) -> Ev:
        info = self.funcs.get(c.name)
        if info is None:
            assert self.builtin is not None
            return self.builtin(c, self)
        if len(c.args) != len(info.params):
            want = len(info.params)
            message = f"function '{c.name}' takes {want} arguments, {len(c.args)} given"
            raise self.fail(message, c.name, c)
        args = [self.compile(a) for a in c.args]
        return _user_call(info, args)


def _lower_hint(name: str, sigil: str, lead: str = "; ") -> str:
    """Why ``RAX`` / ``@RAX`` / ``$CONTEXT`` is unknown: names are case-sensitive, as in HyperDbg,
    and registers and pseudo-registers exist in lower case only."""
    known = PSEUDO if sigil == "$" else REGISTERS
    if name == name.lower() or name.lower() not in known:
        return ""
    close = ")" if lead == " (" else ""
    return f"{lead}names are case-sensitive: did you mean {sigil}{name.lower()}?{close}"


def _user_call(info: FuncInfo, args: list[Ev]) -> Ev:
    def call(m: Machine, f: Locals) -> int:
        frame = [0] * info.nslots
        for i, arg in enumerate(args):
            frame[i] = arg(m, f)
        m.tick()
        if m.depth >= MAX_DEPTH:
            m.abort(f"calls nested deeper than {MAX_DEPTH}")
        m.depth += 1
        m.ret = 0
        assert info.body is not None
        info.body(m, frame)
        m.depth -= 1
        value, m.ret = m.ret, 0
        return value

    return call
