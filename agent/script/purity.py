"""Which conditions are pure (no side effects, only registers, pseudo-registers and operators)
and what they read: decided without numpy, so the hook language (which the controller imports)
does not load it. :mod:`agent.script.vector` evaluates pure conditions over columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields, is_dataclass

from agent.script import nodes as n
from agent.script.names import PSEUDO, REGISTERS

__all__ = ["calls", "is_pure", "reads"]


def calls(tree: object) -> Iterator[n.Call]:
    """Every function call in ``tree`` (a node, or a tuple of them), nested ones included."""
    if isinstance(tree, tuple):
        for item in tree:
            yield from calls(item)
        return
    if isinstance(tree, n.Call):
        yield tree
    if is_dataclass(tree):
        for f in fields(tree):
            yield from calls(getattr(tree, f.name))


def is_pure(tree: n.Block | n.Expr) -> bool:
    match tree:
        case n.Num():
            return True
        case n.Var(scope=n.Scope.REG, name=name):
            return name in REGISTERS
        case n.Var(scope=n.Scope.PSEUDO, name=name):
            return name in PSEUDO
        case n.Unary(operand=inner):
            return is_pure(inner)
        case n.Binary(left=left, right=right):
            return is_pure(left) and is_pure(right)
    return False


def reads(tree: n.Expr) -> frozenset[str]:
    """The column names a pure condition reads (full register names, ``$`` pseudo-registers)."""
    match tree:
        case n.Var(scope=n.Scope.REG, name=name):
            return frozenset({REGISTERS[name].base})
        case n.Var(scope=n.Scope.PSEUDO, name=name):
            return frozenset({"$" + name})
        case n.Unary(operand=inner):
            return reads(inner)
        case n.Binary(left=left, right=right):
            return reads(left) | reads(right)
    return frozenset()
