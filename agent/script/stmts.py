"""Statements → closures ``(machine, locals) -> signal``. Every statement executed and every
loop test is one step of the run's budget, so no loop can run unbounded."""

from __future__ import annotations

from collections.abc import Callable

from agent.script import nodes as n
from agent.script.errors import ScriptError
from agent.script.exprs import _ARITH, Ev, ExprCompiler
from agent.script.runtime import MASK, Machine

__all__ = ["Run", "StmtCompiler"]

GO, BREAK, CONTINUE, RETURN = 0, 1, 2, 3
Run = Callable[[Machine, list[int]], int]


class StmtCompiler:
    def __init__(self, ec: ExprCompiler) -> None:
        self.ec = ec
        self.loops = 0

    def function_body(self, block: n.Block) -> Run:
        return self.block(block)

    def block(self, block: n.Block) -> Run:
        parts = [self.stmt(s) for s in block.body if not isinstance(s, n.FuncDef)]
        if len(parts) == 1:
            return parts[0]

        def run(m: Machine, f: list[int]) -> int:
            for part in parts:
                if sig := part(m, f):
                    return sig
            return GO

        return run

    def stmt(self, s: n.Stmt) -> Run:
        match s:
            case n.Assign():
                return self.assign(s)
            case n.ExprStmt(expr=expr):
                return _call(self.ec.compile(expr))
            case n.Block():
                return self.block(s)
            case n.If():
                return self.if_(s)
            case n.While() | n.DoWhile() | n.For():
                return self.loop(s)
            case n.Break() | n.Continue():
                if not self.loops:
                    word = "break" if isinstance(s, n.Break) else "continue"
                    raise ScriptError(f"'{word}' outside a loop", word, s.line, s.col)
                sig = BREAK if isinstance(s, n.Break) else CONTINUE
                return lambda m, f: _tick(m) or sig
            case n.Return(value=value):
                result = self.ec.compile(value) if value is not None else None
                return _return(result)
        raise AssertionError(s)

    def assign(self, s: n.Assign) -> Run:
        store = self.ec.store(s)
        if s.op == "=":
            assert s.value is not None
            value = self.ec.compile(s.value)

            def set_(m: Machine, f: list[int]) -> int:
                m.tick()
                store(m, f, value(m, f))
                return GO

            return set_
        current = self.ec.compile(s.target)
        if s.op in ("++", "--"):
            delta = 1 if s.op == "++" else MASK
            return _step(store, current, lambda m, f: delta, _ARITH["+"])
        assert s.value is not None
        return _step(store, current, self.ec.compile(s.value), _ARITH[s.op[:-1]])

    def if_(self, s: n.If) -> Run:
        branches = [(self.ec.compile(c), self.block(b)) for c, b in s.branches]
        orelse = self.block(s.orelse) if s.orelse is not None else None

        def run(m: Machine, f: list[int]) -> int:
            m.tick()
            for cond, body in branches:
                if cond(m, f):
                    return body(m, f)
            return orelse(m, f) if orelse is not None else GO

        return run

    def loop(self, s: n.While | n.DoWhile | n.For) -> Run:
        init = [self.stmt(i) for i in s.init] if isinstance(s, n.For) else []
        step = [self.stmt(i) for i in s.step] if isinstance(s, n.For) else []
        cond: Ev = self.ec.compile(s.cond) if s.cond is not None else (lambda m, f: 1)
        self.loops += 1
        body = self.block(s.body)
        self.loops -= 1
        test_first = not isinstance(s, n.DoWhile)

        def run(m: Machine, f: list[int]) -> int:
            for i in init:
                i(m, f)
            first = True
            while True:
                m.tick()
                if (test_first or not first) and not cond(m, f):
                    return GO
                first = False
                sig = body(m, f)
                if sig == BREAK:
                    return GO
                if sig == RETURN:
                    return RETURN
                for i in step:
                    i(m, f)

        return run


def _call(ev: Ev) -> Run:
    def run(m: Machine, f: list[int]) -> int:
        m.tick()
        ev(m, f)  # a call statement: its value is dropped
        return GO

    return run


def _tick(m: Machine) -> int:
    m.tick()
    return 0


def _step(
    store: Callable[[Machine, list[int], int], None],
    current: Ev,
    value: Ev,
    op: Callable[[Machine, int, int], int],
) -> Run:
    def run(m: Machine, f: list[int]) -> int:
        m.tick()
        store(m, f, op(m, current(m, f), value(m, f)))
        return GO

    return run


def _return(ev: Ev | None) -> Run:
    def run(m: Machine, f: list[int]) -> int:
        m.tick()
        m.ret = ev(m, f) if ev is not None else 0
        return RETURN

    return run
