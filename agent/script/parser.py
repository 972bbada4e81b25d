"""Recursive-descent parser for HyperDbg's script language (its ``Grammar.txt`` and
``Boolean_Expression_Grammar.txt``, merged: comparisons and ``&&`` / ``||`` are allowed in any
expression, loosest first ``||``, ``&&``, ``|``, ``^``, ``&``, the six comparisons, shifts,
``+ -``, ``* / %``, then unary ``- + ~ ! &``). ``++`` / ``--`` inside an expression are two
unary operators (``++x`` is ``+(+x)``), as in HyperDbg; as statements they increment.

Every refusal is a :class:`ScriptError` naming the token and its line and column.
"""

from __future__ import annotations

from agent.script import nodes as n
from agent.script.errors import ScriptError
from agent.script.lexer import Kind, Token, tokenize
from agent.script.names import KEYWORDS, REGISTERS, TYPES

__all__ = ["parse_condition", "parse_script"]

_LEVELS: tuple[frozenset[str], ...] = tuple(
    frozenset(ops)
    for ops in (
        ("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!=", "<", ">", "<=", ">="),
        ("<<", ">>"), ("+", "-"), ("*", "/", "%"),
    )
)  # fmt: skip
_ASSIGN = frozenset({"=", "+=", "-=", "*=", "/=", "%=", "<<=", ">>=", "&=", "|=", "^="})
_HEX = frozenset("0123456789abcdef`")
MAX_DEPTH = 200  # nesting of expressions and blocks; deeper scripts are refused, not recursed


def parse_script(text: str) -> n.Block:
    """A ``script { }`` block (or an eval script): statements up to the end."""
    p = _Parser(tokenize(text))
    body = p.statements(until_brace=False)
    return n.Block(tuple(body), 1, 1)


def parse_condition(text: str) -> n.Expr:
    """A ``condition { }`` block: one expression, optionally followed by ``;``."""
    p = _Parser(tokenize(text))
    expr = p.expr()
    p.accept(";")
    p.expect_end()
    return expr


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
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

    # -- statements --------------------------------------------------------------------------

    def statements(self, *, until_brace: bool) -> list[n.Stmt]:
        body: list[n.Stmt] = []
        while not (self.tok.kind is Kind.EOF or (until_brace and self.is_op("}"))):
            if self.accept(";"):
                continue
            body.append(self.statement())
        return body

    def block(self, what: str) -> n.Block:
        start = self.expect("{", f" (HyperDbg requires braces after {what})")
        self.enter()
        body = self.statements(until_brace=True)
        self.expect("}", " to close the block")
        self.depth -= 1
        return n.Block(tuple(body), start.line, start.col)

    def statement(self) -> n.Stmt:
        tok = self.tok
        if self.is_op("{"):
            return self.block("'{'")
        if tok.kind is Kind.WORD and tok.value in KEYWORDS:
            return self.keyword(tok)
        if tok.kind is Kind.WORD and tok.value in TYPES:
            return self.declaration()
        stmt = self.simple()
        self.expect(";", " after the statement")
        return stmt

    def keyword(self, tok: Token) -> n.Stmt:
        word = self.next().value
        if word == "if":
            return self.if_rest(tok)
        if word == "while":
            cond = self.paren_cond()
            return n.While(cond, self.block("while"), tok.line, tok.col)
        if word == "do":
            body = self.block("do")
            if not self.is_word("while"):
                self.fail("expected 'while' after do { }")
            self.next()
            cond = self.paren_cond()
            self.expect(";", " after do { } while (...)")
            return n.DoWhile(body, cond, tok.line, tok.col)
        if word == "for":
            return self.for_rest(tok)
        if word in ("break", "continue"):
            self.expect(";", f" after '{word}'")
            cls = n.Break if word == "break" else n.Continue
            return cls(tok.line, tok.col)
        if word == "return":
            value = None if self.is_op(";") else self.expr()
            self.expect(";", " after return")
            return n.Return(value, tok.line, tok.col)
        self.fail(f"'{word}' cannot start a statement", tok)
        raise AssertionError  # fail() raised

    def paren_cond(self) -> n.Expr:
        self.expect("(", " before the condition")
        cond = self.expr()
        self.expect(")", " after the condition")
        return cond

    def if_rest(self, tok: Token) -> n.If:
        branches = [(self.paren_cond(), self.block("if"))]
        orelse = None
        while self.is_word("elsif"):
            self.next()
            branches.append((self.paren_cond(), self.block("elsif")))
        if self.is_word("else"):
            self.next()
            orelse = self.block("else")
        return n.If(tuple(branches), orelse, tok.line, tok.col)

    def for_rest(self, tok: Token) -> n.For:
        self.expect("(", " after 'for'")
        init = self.simple_list(";")
        self.expect(";", " after the for loop's first part")
        cond = None if self.is_op(";") else self.expr()
        self.expect(";", " after the for loop's condition")
        step = self.simple_list(")")
        self.expect(")", " after the for loop's last part")
        return n.For(tuple(init), cond, tuple(step), self.block("for"), tok.line, tok.col)

    def simple_list(self, end: str) -> list[n.Stmt]:
        items: list[n.Stmt] = []
        while not self.is_op(end):
            items.append(self.declaration(bare=True) if self.is_type() else self.simple())
            if not self.accept(","):
                break
        return items

    def is_type(self) -> bool:
        return self.tok.kind is Kind.WORD and self.tok.value in TYPES

    def declaration(self, *, bare: bool = False) -> n.Stmt:
        start = self.tok
        declared_void = False
        while self.is_type():
            declared_void = declared_void or self.tok.value == "void"
            self.next()
        while self.accept("*"):
            pass
        name = self.tok
        if name.kind is not Kind.WORD or name.value in KEYWORDS | TYPES:
            self.fail("expected a name after the type")
        self.next()
        if self.is_op("(") and not bare:
            return self.function(start, str(name.value), returns_value=not declared_void)
        var = n.Var(n.Scope.LOCAL, str(name.value), name.line, name.col)
        value: n.Expr = n.Num(0, name.line, name.col)
        if self.accept("="):
            value = self.expr()
        if not bare:
            self.expect(";", " after the declaration")
        return n.Assign(var, "=", value, start.line, start.col)

    def function(self, start: Token, name: str, *, returns_value: bool) -> n.FuncDef:
        self.expect("(")
        params: list[str] = []
        while not self.is_op(")"):
            while self.is_type():
                self.next()
            while self.accept("*"):
                pass
            p = self.tok
            if p.kind is not Kind.WORD or p.value in KEYWORDS | TYPES:
                self.fail("expected a parameter name")
            params.append(str(self.next().value))
            if not self.accept(","):
                break
        self.expect(")", " after the parameters")
        body = self.block(f"function '{name}'")
        return n.FuncDef(name, tuple(params), body, returns_value, start.line, start.col)

    def simple(self) -> n.Stmt:
        """An assignment, ``x++`` / ``++x``, or a call — the statements without a keyword."""
        tok = self.tok
        if self.is_op("++", "--") and self.peek().kind in (Kind.WORD, Kind.REG, Kind.GLOBAL):
            op = self.next().text
            return n.Assign(self.lvalue(self.primary(), tok), op, None, tok.line, tok.col)
        expr = self.expr()
        if self.is_op("++", "--"):
            op = self.next().text
            return n.Assign(self.lvalue(expr, tok), op, None, tok.line, tok.col)
        if self.tok.kind is Kind.OP and self.tok.text in _ASSIGN:
            op = self.next().text
            return n.Assign(self.lvalue(expr, tok), op, self.expr(), tok.line, tok.col)
        if not isinstance(expr, n.Call):
            self.fail("expected an assignment or a function call", tok)
        return n.ExprStmt(expr, tok.line, tok.col)

    def lvalue(self, expr: n.Expr, tok: Token) -> n.Var:
        if not isinstance(expr, n.Var) or expr.scope in (n.Scope.PSEUDO, n.Scope.ADDR):
            what = "a pseudo-register" if isinstance(expr, n.Var) else "this expression"
            self.fail(f"cannot assign to {what}", tok)
        assert isinstance(expr, n.Var)
        return expr

    # -- expressions -------------------------------------------------------------------------

    def expr(self, level: int = 0) -> n.Expr:
        if level == len(_LEVELS):
            return self.unary()
        self.enter()
        left = self.expr(level + 1)
        ops = _LEVELS[level]
        while self.tok.kind is Kind.OP and self.tok.text in ops:
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
        if set(name) <= _HEX:  # a bare hex word is a number (HyperDbg issues #552, #656)
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
