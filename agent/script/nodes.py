"""The syntax tree: frozen dataclasses, each with the position of its first token.

Expressions evaluate to a 64-bit unsigned value; statements run for their effect. Names are
resolved by the compiler, not here: a :class:`Var` is a local, a global (``.name``), a register
(``@name`` or a bare register name) or a pseudo-register (``$name``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = [
    "Assign",
    "Binary",
    "Block",
    "Break",
    "Call",
    "Continue",
    "DoWhile",
    "Expr",
    "ExprStmt",
    "For",
    "FuncDef",
    "If",
    "Num",
    "Return",
    "Scope",
    "Stmt",
    "Str",
    "Unary",
    "Var",
    "While",
]


class Scope(Enum):
    LOCAL = ""
    GLOBAL = "."
    REG = "@"
    PSEUDO = "$"
    ADDR = "&"  # &name: the address of a variable (memcpy between variables)


@dataclass(frozen=True, slots=True)
class Num:
    value: int
    line: int = 0
    col: int = 0


@dataclass(frozen=True, slots=True)
class Str:
    value: str
    wide: bool
    line: int = 0
    col: int = 0


@dataclass(frozen=True, slots=True)
class Var:
    scope: Scope
    name: str  # lower case, without the sigil
    line: int = 0
    col: int = 0
    target: Scope | None = None  # for ADDR: the scope of the variable pointed to


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # - + ~ !
    operand: Expr
    line: int = 0
    col: int = 0


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Expr
    right: Expr
    line: int = 0
    col: int = 0


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Expr, ...]
    line: int = 0
    col: int = 0


Expr = Num | Str | Var | Unary | Binary | Call


@dataclass(frozen=True, slots=True)
class Assign:
    target: Var
    op: str  # "=", "+=", ..., "++", "--"
    value: Expr | None
    line: int = 0
    col: int = 0


@dataclass(frozen=True, slots=True)
class ExprStmt:
    expr: Expr
    line: int = 0
    col: int = 0


@dataclass(frozen=True, slots=True)
class Block:
    body: tuple[Stmt, ...]
    line: int = 0
    col: int = 0


@dataclass(frozen=True, slots=True)
class If:
    branches: tuple[tuple[Expr, Block], ...]  # if, then each elsif
    orelse: Block | None
    line: int = 0
    col: int = 0


@dataclass(frozen=True, slots=True)
class While:
    cond: Expr
    body: Block
    line: int = 0
    col: int = 0


@dataclass(frozen=True, slots=True)
class DoWhile:
    body: Block
    cond: Expr
    line: int = 0
    col: int = 0


@dataclass(frozen=True, slots=True)
class For:
    init: tuple[Stmt, ...]
    cond: Expr | None
    step: tuple[Stmt, ...]
    body: Block
    line: int = 0
    col: int = 0


@dataclass(frozen=True, slots=True)
class Break:
    line: int = 0
    col: int = 0


@dataclass(frozen=True, slots=True)
class Continue:
    line: int = 0
    col: int = 0


@dataclass(frozen=True, slots=True)
class Return:
    value: Expr | None
    line: int = 0
    col: int = 0


@dataclass(frozen=True, slots=True)
class FuncDef:
    name: str
    params: tuple[str, ...]
    body: Block
    returns_value: bool  # declared with a type other than void
    line: int = 0
    col: int = 0


Stmt = Assign | ExprStmt | Block | If | While | DoWhile | For | Break | Continue | Return | FuncDef
