"""A condition as a kvm-trace kernel filter: the part the ``kvm:kvm_pio`` tracepoint's fields
(``rw port size count val``) can say, in tracefs' filter syntax (Documentation/trace/events.rst,
"Event filtering"), so that non-matching accesses never reach user space (the in-kernel selector
idea of Tetragon and Falco).

On kvm-trace a script sees ``@rax`` as the access's value (the tracepoint carries no registers):
``@rax`` / ``@eax`` are ``val``; ``@ax`` and ``@al`` are ``val`` when the access is at most 2 or
1 bytes wide. ``$context`` is ``port``.

:func:`kernel_filter` returns a *superset* filter: every access the condition accepts passes it
(user space still evaluates the condition exactly), and ``exact`` says whether it is the
condition itself. What it cannot express (arithmetic, other registers, signed comparisons with
negative constants) it leaves unconstrained, never wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.script import nodes as n

__all__ = ["KernelFilter", "kernel_filter"]

_FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "==": "==", "!=": "!="}
_NEGATE = {"==": "!=", "!=": "==", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}
_VAL_PARTS = {"rax": None, "eax": None, "ax": 2, "al": 1}  # register -> widest exact size
_BIG = 1 << 63


@dataclass(frozen=True, slots=True)
class KernelFilter:
    expr: str | None  # None: no constraint (every access passes)
    exact: bool


_TRUE = KernelFilter(None, False)


def kernel_filter(tree: n.Expr) -> KernelFilter:
    """The tracefs expression implied by ``tree`` (see the module docstring)."""
    match tree:
        case n.Binary(op="&&", left=left, right=right):
            a, b = kernel_filter(left), kernel_filter(right)
            parts = [f.expr for f in (a, b) if f.expr is not None]
            expr = "&&".join(f"({p})" for p in parts) if parts else None
            return KernelFilter(expr, a.exact and b.exact)
        case n.Binary(op="||", left=left, right=right):
            a, b = kernel_filter(left), kernel_filter(right)
            if a.expr is None or b.expr is None:
                return _TRUE
            return KernelFilter(f"({a.expr})||({b.expr})", a.exact and b.exact)
        case n.Unary(op="!", operand=inner):
            f = kernel_filter(inner)
            return KernelFilter(f"!({f.expr})", True) if f.exact and f.expr else _TRUE
        case n.Binary(op=op, left=left, right=right) if op in _FLIP:
            return _compare(op, left, right)
        case n.Binary(op="&", left=left, right=right):
            return _bit_test(left, right)
    field = _field(tree)
    if field is not None:  # a bare field: true when non-zero
        return _guard(field, "!=", 0)
    return _TRUE


def _field(e: n.Expr) -> tuple[str, int | None] | None:
    """(tracepoint field, widest access size for which it is exact) for a readable term."""
    match e:
        case n.Var(scope=n.Scope.PSEUDO, name="context"):
            return ("port", None)
        case n.Var(scope=n.Scope.REG, name=name) if name in _VAL_PARTS:
            return ("val", _VAL_PARTS[name])
    return None


def _const(e: n.Expr) -> int | None:
    return e.value if isinstance(e, n.Num) else None


def _compare(op: str, left: n.Expr, right: n.Expr) -> KernelFilter:
    field, k = _field(left), _const(right)
    if field is None:
        field, k, op = _field(right), _const(left), _FLIP[op]
    if field is None or k is None:
        return _TRUE
    if op in ("<", ">", "<=", ">=") and k >= _BIG:  # a negative constant, signed compare
        return _TRUE
    return _guard(field, op, k)


def _guard(field: tuple[str, int | None], op: str, k: int) -> KernelFilter:
    name, exact_size = field
    test = f"{name}{op}{k:#x}"
    if exact_size is None:
        return KernelFilter(test, True)
    # val holds `size` bytes: @al / @ax are val only up to 1 / 2 bytes; wider accesses pass
    return KernelFilter(f"(size<={exact_size}&&{test})||size>{exact_size}", False)


def _bit_test(left: n.Expr, right: n.Expr) -> KernelFilter:
    field, k = _field(left), _const(right)
    if field is None:
        field, k = _field(right), _const(left)
    if field is None or k is None or k >> 32:
        return _TRUE
    name, exact_size = field
    if exact_size is not None:
        k &= (1 << (8 * exact_size)) - 1  # the part's bits only
    test = f"{name}&{k:#x}"
    if exact_size is None:
        return KernelFilter(test, True)
    return KernelFilter(f"(size<={exact_size}&&{test})||size>{exact_size}", False)
