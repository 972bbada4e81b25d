"""Statements of HyperDbg's script language (its ``Grammar.txt``): blocks, ``if`` / ``elsif`` /
``else``, ``while``, ``do``-``while``, ``for``, ``break``, ``continue``, ``return``, typed
declarations and function definitions, assignments (``=``, ``op=``, ``++``, ``--``) and calls.
"""

from __future__ import annotations

from agent.script import nodes as n
from agent.script.errors import ScriptError
from agent.script.lexer import Kind, Token, tokenize
from agent.script.names import KEYWORDS, REGISTERS, TYPES
from agent.script.parser import ASSIGN_OPS, ExprParser, is_hex_word

__all__ = ["StmtParser", "parse_script"]


def parse_script(text: str) -> n.Block:
    """A ``script { }`` block (or an eval script): statements up to the end."""
    p = StmtParser(tokenize(text))
    body = p.statements(until_brace=False)
    return n.Block(tuple(body), 1, 1)


class StmtParser(ExprParser):
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
        if tok.kind is Kind.WORD and tok.value not in KEYWORDS | TYPES:
            self.not_a_keyword(tok)
        if tok.kind is Kind.WORD and tok.value in KEYWORDS:
            return self.keyword(tok)
        if tok.kind is Kind.WORD and tok.value in TYPES:
            return self.declaration()
        stmt = self.simple()
        self.expect(";", " after the statement")
        return stmt

    def not_a_keyword(self, tok: Token) -> None:
        """``IF (x) { }``, ``INT x``: names are case-sensitive, so a keyword in another case is a
        name; used as a keyword, it is refused with a hint rather than a confusing error."""
        folded = str(tok.value).lower()
        used_as_keyword = self.peek().kind is Kind.WORD or self.peek().text in ("(", "{")
        if folded in KEYWORDS | TYPES and used_as_keyword:
            message = (
                f"'{tok.text}' is not a keyword: keywords and types are lower case ('{folded}')"
            )
            raise ScriptError(message, tok.text, tok.line, tok.col)

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
        cond = self.condition()
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
        cond = None if self.is_op(";") else self.condition()
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
        name = self.declared_name("a name after the type")
        if self.is_op("(") and not bare:
            return self.function(start, str(name.value), returns_value=not declared_void)
        var = n.Var(n.Scope.LOCAL, str(name.value), name.line, name.col)
        value: n.Expr = n.Num(0, name.line, name.col)
        if self.accept("="):
            value = self.expr()
        if not bare:
            self.expect(";", " after the declaration")
        return n.Assign(var, "=", value, start.line, start.col)

    def declared_name(self, what: str) -> Token:
        """The name a declaration, a parameter or a function gets: not a word HyperDbg's scanner
        makes a number (``abc``) or a register (``al``), where ours would silently read it so."""
        tok = self.tok
        if tok.kind is not Kind.WORD or tok.value in KEYWORDS | TYPES:
            self.fail(f"expected {what}")
        name = str(tok.value)
        if is_hex_word(name):
            message = f"'{name}' is a hex number, not a name: pick another name"
            raise ScriptError(message, name, tok.line, tok.col)
        if name in REGISTERS:
            message = f"'{name}' is a register (@{name}), not a name: pick another name"
            raise ScriptError(message, name, tok.line, tok.col)
        return self.next()

    def function(self, start: Token, name: str, *, returns_value: bool) -> n.FuncDef:
        self.expect("(")
        params: list[str] = []
        while not self.is_op(")"):
            while self.is_type():
                self.next()
            while self.accept("*"):
                pass
            params.append(str(self.declared_name("a parameter name").value))
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
        if self.tok.kind is Kind.OP and self.tok.text in ASSIGN_OPS:
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
