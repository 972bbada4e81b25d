"""Recursive-descent parser for HyperDbg's script language: tokens and expressions here,
statements in :mod:`agent.script.statements` (its ``Grammar.txt`` and
``Boolean_Expression_Grammar.txt``). Comparisons and ``&&`` / ``||`` are allowed only in
conditions, as in HyperDbg (``x = 1 || 0;`` is refused). Precedence, loosest first: ``||``,
``&&``, ``|``, ``^``, ``&``, the six comparisons, shifts, ``+ -``, ``* / %``, then unary
``- + ~ ! &``. ``++`` / ``--`` inside an expression are two
unary operators (``++x`` is ``+(+x)``), as in HyperDbg; as statements they increment.

Every refusal is a :class:`ScriptError` naming the token and its line and column.
"""

from __future__ import annotations

from agent.script import nodes as n
from agent.script.errors import ScriptError
from agent.script.lexer import Kind, Token, tokenize
from agent.script.names import KEYWORDS, REGISTERS, TYPES

__all__ = ["ExprParser", "is_hex_word", "parse_condition"]

_LEVELS: tuple[frozenset[str], ...] = tuple(
    frozenset(ops)
    for ops in (
        ("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!=", "<", ">", "<=", ">="),
        ("<<", ">>"), ("+", "-"), ("*", "/", "%"),
    )
)  # fmt: skip
_BOOLEAN = frozenset({0, 1, 5})  # levels of ||, && and the comparisons
ASSIGN_OPS = frozenset({"=", "+=", "-=", "*=", "/=", "%=", "<<=", ">>=", "&=", "|=", "^="})
_HEX = frozenset("0123456789abcdef`")
MAX_DEPTH = 200  # nesting of expressions and blocks; deeper scripts are refused, not recursed


def is_hex_word(name: str) -> bool:
    """A bare word HyperDbg's scanner makes a number: hex digits (either case) and backticks."""
    return set(name.lower()) <= _HEX and name.strip("`") != ""


def parse_condition(text: str) -> n.Expr:
    """A ``condition { }`` block: one expression, optionally followed by ``;``."""
    p = ExprParser(tokenize(text))
    expr = p.condition()
    p.accept(";")
    p.expect_end()
    return expr


class ExprParser:
    """Tokens and expressions; :class:`agent.script.statements.StmtParser` adds statements."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.boolean = False  # inside a condition: comparisons, && and || allowed
        self.pos = 0
        self.depth = 0

    # -- tokens ------------------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.tok
        self.pos = min(self.pos + 1, len(self.tokens) - 1)
        return tok

    def is_op(self, *ops: str) -> bool:
        return self.tok.kind is Kind.OP and self.tok.text in ops

    def is_word(self, *words: str) -> bool:
        return self.tok.kind is Kind.WORD and self.tok.value in words

    def accept(self, op: str) -> bool:
        if self.is_op(op):
            self.next()
            return True
        return False

    def expect(self, op: str, what: str = "") -> Token:
        if not self.is_op(op):
            self.fail(f"expected '{op}'{what}")
        return self.next()

    def expect_end(self) -> None:
        if self.tok.kind is not Kind.EOF:
            self.fail("unexpected token after the end")

    def fail(self, message: str, tok: Token | None = None) -> None:
        tok = tok or self.tok
        shown = tok.text if tok.kind is not Kind.EOF else "end of script"
        raise ScriptError(f"{message}, got '{shown}'", tok.text, tok.line, tok.col)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"nested deeper than {MAX_DEPTH} levels")

    # -- expressions -------------------------------------------------------------------------

    def condition(self) -> n.Expr:
        """An expression where comparisons and ``&&`` / ``||`` are allowed (HyperDbg's
        Boolean_Expression_Grammar: ``if``, ``elsif``, ``while``, ``for`` and ``condition { }``)."""
        outer, self.boolean = self.boolean, True
        try:
            return self.expr()
        finally:
            self.boolean = outer

    def expr(self, level: int = 0) -> n.Expr:
        if level == len(_LEVELS):
            return self.unary()
        self.enter()
        left = self.expr(level + 1)
        ops = _LEVELS[level]
        chain = 0  # a chain of n operators is a tree n deep on its left: it counts as nesting
        while self.tok.kind is Kind.OP and self.tok.text in ops:
            chain += 1
            if self.depth + chain > MAX_DEPTH:
                self.fail(f"expression nested deeper than {MAX_DEPTH} levels")
            if level in _BOOLEAN and not self.boolean:
                self.fail(f"'{self.tok.text}' is allowed only in a condition (if, while, for, "
                          "condition { })")  # fmt: skip
            op = self.next()
            right = self.expr(level + 1)
            left = n.Binary(op.text, left, right, op.line, op.col)
        self.depth -= 1
        return left

    def unary(self) -> n.Expr:
        tok = self.tok
        if self.is_op("-", "+", "~", "!", "++", "--"):
            self.next()
            self.enter()
            operand = self.unary()
            self.depth -= 1
            if tok.text in ("++", "--"):  # two unary operators, as HyperDbg reads them
                inner = n.Unary(tok.text[0], operand, tok.line, tok.col + 1)
                return n.Unary(tok.text[0], inner, tok.line, tok.col)
            return n.Unary(tok.text, operand, tok.line, tok.col)
        if self.is_op("&"):
            self.next()
            target = self.primary()
            if not isinstance(target, n.Var) or target.scope not in (n.Scope.LOCAL, n.Scope.GLOBAL):
                self.fail("'&' takes the address of a variable only", tok)
            assert isinstance(target, n.Var)
            return n.Var(n.Scope.ADDR, target.name, tok.line, tok.col, target.scope)
        return self.primary()

    def primary(self) -> n.Expr:
        tok = self.next()
        if tok.kind is Kind.NUM:
            return n.Num(int(tok.value), tok.line, tok.col)
        if tok.kind in (Kind.STR, Kind.WSTR):
            return n.Str(str(tok.value), tok.kind is Kind.WSTR, tok.line, tok.col)
        if tok.kind is Kind.OP and tok.text == "(":
            self.enter()
            inner = self.expr()
            self.expect(")", " to close '('")
            self.depth -= 1
            return inner
        scopes = {Kind.REG: n.Scope.REG, Kind.PSEUDO: n.Scope.PSEUDO, Kind.GLOBAL: n.Scope.GLOBAL}
        if tok.kind in scopes:
            return n.Var(scopes[tok.kind], str(tok.value), tok.line, tok.col)
        if tok.kind is Kind.WORD:
            return self.word(tok)
        self.fail("expected a value", tok)
        raise AssertionError

    def word(self, tok: Token) -> n.Expr:
        name = str(tok.value)
        if self.is_op("("):
            return self.call(tok)
        if name in KEYWORDS or name in TYPES:
            self.fail(f"'{tok.text}' is a keyword, not a value", tok)
        if name in REGISTERS:
            return n.Var(n.Scope.REG, name, tok.line, tok.col)
        if is_hex_word(name):  # a bare hex word is a number (HyperDbg issues #552, #656)
            return n.Num(int(name.replace("`", ""), 16), tok.line, tok.col)
        return n.Var(n.Scope.LOCAL, name, tok.line, tok.col)

    def call(self, tok: Token) -> n.Call:
        self.expect("(")
        args: list[n.Expr] = []
        while not self.is_op(")"):
            args.append(self.expr())
            if not self.accept(","):
                break
        self.expect(")", f" to close the call of '{tok.text}'")
        return n.Call(str(tok.value), tuple(args), tok.line, tok.col)
