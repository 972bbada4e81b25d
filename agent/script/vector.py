"""Pure conditions over whole blocks of event columns, with numpy: never a Python call per event.

A condition is *pure* when it only reads registers, pseudo-registers and numbers and uses no
function (so it has no effect and cannot abort except by dividing by zero). :func:`compile_columns`
turns it into a function of a column table (``name → uint64 array``, registers by their full name,
pseudo-registers by ``$name``) returning a boolean mask and the number of rows whose run aborted.
Division by a zero element aborts that element's run, as the per-event evaluator does: the row is
false (an aborted condition skips its event) and is counted, so the caller counts and announces
the aborts exactly as the per-hit path would (a divisor a short-circuit skips does not count).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from agent.script import nodes as n
from agent.script.names import REGISTERS
from agent.script.purity import is_pure, reads

__all__ = ["Columns", "compile_columns", "is_pure", "reads"]

Columns = Mapping[str, "np.ndarray[Any, np.dtype[np.uint64]]"]
Arr = "np.ndarray[Any, np.dtype[np.uint64]]"
_U64 = np.uint64
_SIGN = np.uint64(1 << 63)


def compile_columns(tree: n.Block | n.Expr) -> Callable[[Columns, int], tuple[Any, int]]:
    """``fn(columns, length) -> (bool array, aborted rows)``; ``tree`` must be pure
    (``ValueError`` if not)."""
    if isinstance(tree, n.Block) or not is_pure(tree):
        raise ValueError("only a pure condition has a columnar form")
    ev = _compile(tree)

    def run(cols: Columns, length: int) -> tuple[Any, int]:
        with np.errstate(all="ignore"):
            value, ok = ev(cols, length)
        if ok is True:
            return value != 0, 0
        return (value != 0) & ok, length - int(np.count_nonzero(ok))

    return run


Ev = Callable[[Columns, int], tuple[Any, Any]]  # (values, defined) — defined is False on x/0


def _compile(e: n.Expr) -> Ev:
    match e:
        case n.Num(value=v):
            const = _U64(v)
            return lambda c, k: (np.full(k, const, dtype=_U64), True)
        case n.Var(scope=n.Scope.REG, name=name):
            part = REGISTERS[name]
            base, shift, mask = part.base, _U64(part.shift), _U64(part.mask)
            return lambda c, k: ((_col(c, base, k) >> shift) & mask, True)
        case n.Var(scope=n.Scope.PSEUDO, name=name):
            key = "$" + name
            return lambda c, k: (_col(c, key, k), True)
        case n.Unary(op=op, operand=inner):
            return _unary(op, _compile(inner))
        case n.Binary(op=op, left=left, right=right):
            return _binary(op, _compile(left), _compile(right))
    raise AssertionError(e)


def _col(cols: Columns, key: str, length: int) -> Any:
    col = cols.get(key)
    return np.zeros(length, dtype=_U64) if col is None else col


def _unary(op: str, inner: Ev) -> Ev:
    def run(c: Columns, k: int) -> tuple[Any, Any]:
        a, ok = inner(c, k)
        if op == "-":
            return (~a) + _U64(1), ok
        if op == "~":
            return ~a, ok
        if op == "!":
            return (a == 0).astype(_U64), ok
        return a, ok

    return run


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "&": np.bitwise_and, "|": np.bitwise_or,
    "^": np.bitwise_xor, "==": np.equal, "!=": np.not_equal,
}  # fmt: skip
_SIGNED = {"<": np.less, ">": np.greater, "<=": np.less_equal, ">=": np.greater_equal}


def _binary(op: str, left: Ev, right: Ev) -> Ev:
    def run(c: Columns, k: int) -> tuple[Any, Any]:
        a, ok_a = left(c, k)
        if op in ("&&", "||"):  # both sides are pure, so evaluating both changes nothing
            b, ok_b = right(c, k)
            both = (a != 0) & (b != 0) if op == "&&" else (a != 0) | (b != 0)
            return both.astype(_U64), _ok(ok_a, ok_b, a, b, op)
        b, ok_b = right(c, k)
        ok = ok_a & ok_b if not (ok_a is True and ok_b is True) else True
        return _arith(op, a, b, ok)

    return run


def _ok(ok_a: Any, ok_b: Any, a: Any, b: Any, op: str) -> Any:
    if ok_a is True and ok_b is True:
        return True
    # short-circuit: the right side's abort only counts where the left did not decide
    decided = (a == 0) if op == "&&" else (a != 0)
    return ok_a & (decided | ok_b)


def _arith(op: str, a: Any, b: Any, ok: Any) -> tuple[Any, Any]:
    if op in _OPS:
        out = _OPS[op](a, b)
        return (out.astype(_U64) if out.dtype != _U64 else out), ok
    if op in _SIGNED:
        return _SIGNED[op](a ^ _SIGN, b ^ _SIGN).astype(_U64), ok
    if op in ("/", "%"):
        zero = b == 0
        safe = np.where(zero, _U64(1), b)
        out = a // safe if op == "/" else a % safe
        return out, ok & ~zero
    big = b >= _U64(64)  # << and >>: 64 or more gives 0
    count = np.where(big, _U64(0), b)
    out = np.left_shift(a, count) if op == "<<" else np.right_shift(a, count)
    return np.where(big, _U64(0), out), ok
