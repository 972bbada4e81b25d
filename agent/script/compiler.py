"""Compile a script or a condition once (at SetHook, or for ``ioinctl eval``) into a
:class:`Program`: name, arity and capability errors are raised here, never when a hit runs it.

Statements become closures returning a signal (go on, break, continue, return). Each function
and the main body have their own locals, zeroed on every run; a local read but never assigned in
its scope is refused as unknown, and so is a global that the script reads but never assigns.
Limits: :data:`MAX_LOCALS` per scope, :data:`MAX_GLOBALS` names per script (HyperDbg's 512).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass

from agent.errors import CapabilityError
from agent.model import Capability
from agent.script import nodes as n
from agent.script.builtins import compile_builtin
from agent.script.errors import ScriptAbort, ScriptError
from agent.script.exprs import Ev, ExprCompiler, FuncInfo
from agent.script.names import FUNCTIONS
from agent.script.parser import parse_condition
from agent.script.purity import is_pure
from agent.script.runtime import STEP_BUDGET, GuestMemory, Machine, RunResult
from agent.script.statements import parse_script
from agent.script.stmts import StmtCompiler

__all__ = ["MAX_GLOBALS", "MAX_LOCALS", "Program", "compile_condition", "compile_script"]

MAX_LOCALS = 256
MAX_GLOBALS = 512


@dataclass(frozen=True, slots=True)
class Program:
    """A compiled script or condition; :meth:`run` is safe to call from any thread."""

    kind: str  # "script" or "condition"
    source: str
    tree: n.Block | n.Expr
    needs: dict[Capability, str]  # capability → the first token needing it
    globals: frozenset[str]
    nslots: int
    entry: Callable[[Machine, list[int]], int]

    @property
    def pure(self) -> bool:
        """No effects at all: no writes, calls, or globals (the columnar path can take it)."""
        return self.kind == "condition" and is_pure(self.tree)

    def check(self, capabilities: Iterable[str], backend: str) -> None:
        """Refuse (``CapabilityError``) a program needing what ``capabilities`` lacks."""
        have = set(capabilities)
        for cap, where in self.needs.items():
            if cap not in have:
                raise CapabilityError(cap, backend, f"{self.kind}: {where}")

    def run(
        self,
        regs: MutableMapping[str, int],
        pseudo: MutableMapping[str, int],
        globals_: MutableMapping[str, int],
        *,
        budget: int = STEP_BUDGET,
        memory: GuestMemory | None = None,
    ) -> RunResult:
        """Run once; raises ``ScriptAbort`` (budget, depth, division by zero), carrying the
        output printed before the abort."""
        m = Machine(regs, pseudo, globals_, budget=budget, memory=memory)
        try:
            value = self.entry(m, [0] * self.nslots)
        except ScriptAbort as e:
            e.output = "".join(m.out)
            raise
        return m.finish(value if self.kind == "condition" else 0)


def compile_script(source: str) -> Program:
    tree = parse_script(source)
    funcs = _functions(tree)
    ec = _scope(_assigned(tree.body), funcs, "the script")
    sc = StmtCompiler(ec)
    for fdef in _defs(tree.body):
        info = funcs[fdef.name]
        fec = _scope((*fdef.params, *_assigned(fdef.body.body)), funcs, f"'{fdef.name}'")
        fec.needs, fec.globals_read, fec.globals_written = (
            ec.needs,
            ec.globals_read,
            ec.globals_written,
        )
        info.nslots = len(fec.slots)
        info.body = StmtCompiler(fec).function_body(fdef.body)
    body = sc.block(tree)

    def entry(m: Machine, f: list[int]) -> int:
        body(m, f)
        return 0

    return _program("script", source, tree, ec, entry)


def compile_condition(source: str) -> Program:
    tree = parse_condition(source)
    ec = _scope((), {}, "the condition")
    ev: Ev = ec.compile(tree)
    return _program("condition", source, tree, ec, ev)


def _program(
    kind: str, source: str, tree: n.Block | n.Expr, ec: ExprCompiler, entry: Ev
) -> Program:
    unknown = set(ec.globals_read) - ec.globals_written
    if unknown:
        var = ec.globals_read[min(unknown)]
        message = f"unknown global '.{var.name}' (the {kind} never assigns it)"
        raise ScriptError(message, "." + var.name, var.line, var.col)
    names = set(ec.globals_read) | ec.globals_written
    if len(names) > MAX_GLOBALS:
        raise ScriptError(f"more than {MAX_GLOBALS} globals", "." + min(names))
    return Program(kind, source, tree, dict(ec.needs), frozenset(names), len(ec.slots), entry)


def _scope(names: Iterable[str], funcs: dict[str, FuncInfo], what: str) -> ExprCompiler:
    slots: dict[str, int] = {}
    for name in names:
        slots.setdefault(name, len(slots))
    if len(slots) > MAX_LOCALS:
        raise ScriptError(f"{what} has more than {MAX_LOCALS} local variables", min(slots))
    return ExprCompiler(slots, funcs, builtin=compile_builtin)


def _functions(tree: n.Block) -> dict[str, FuncInfo]:
    funcs: dict[str, FuncInfo] = {}
    for fdef in _defs(tree.body):
        if fdef.name in funcs or fdef.name in FUNCTIONS:
            raise ScriptError(
                f"function '{fdef.name}' defined twice", fdef.name, fdef.line, fdef.col
            )
        funcs[fdef.name] = FuncInfo(fdef.name, fdef.params)
    return funcs


def _walk(stmts: Iterable[n.Stmt]) -> Iterator[n.Stmt]:
    """Every statement, nested ones included, but not inside function definitions."""
    for s in stmts:
        yield s
        match s:
            case n.Block(body=body):
                yield from _walk(body)
            case n.If(branches=branches, orelse=orelse):
                for _, block in branches:
                    yield from _walk(block.body)
                if orelse is not None:
                    yield from _walk(orelse.body)
            case n.While(body=body) | n.DoWhile(body=body):
                yield from _walk(body.body)
            case n.For(init=init, step=step, body=body):
                yield from _walk((*init, *step, *body.body))


def _defs(stmts: Iterable[n.Stmt]) -> Iterator[n.FuncDef]:
    return (s for s in _walk(stmts) if isinstance(s, n.FuncDef))


def _assigned(stmts: Iterable[n.Stmt]) -> list[str]:
    names = [s.target.name for s in _walk(stmts) if isinstance(s, n.Assign)
             and s.target.scope is n.Scope.LOCAL]  # fmt: skip
    for s in _walk(stmts):  # memcpy(&x, ...) assigns x
        if isinstance(s, n.ExprStmt) and isinstance(s.expr, n.Call) and s.expr.name == "memcpy":
            names += [
                a.name
                for a in s.expr.args[:1]
                if isinstance(a, n.Var) and a.target is n.Scope.LOCAL
            ]
    return names
