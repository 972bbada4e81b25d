"""Helpers for the script-language tests: run a script and get its output and state."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from agent.script import RunResult, compile_condition, compile_script


@dataclass
class Ran:
    result: RunResult
    regs: dict[str, int]
    globals: dict[str, int] = field(default_factory=dict)

    @property
    def lines(self) -> list[str]:
        return self.result.output.splitlines()


def run(
    source: str,
    regs: dict[str, int] | None = None,
    pseudo: dict[str, int] | None = None,
    globals_: dict[str, int] | None = None,
    budget: int = 1_000_000,
) -> Ran:
    regs = dict(regs or {})
    store = globals_ if globals_ is not None else {}
    result = compile_script(source).run(regs, dict(pseudo or {}), store, budget=budget)
    return Ran(result, regs, store)


def value(expr: str, **regs: int) -> int:
    """The value of one expression, through printf like the conformance run does."""
    out = run(f'printf("%llx", {expr});', regs).result.output
    return int(out, 16)


def cond(expr: str, pseudo: dict[str, int] | None = None, **regs: int) -> int:
    return compile_condition(expr).run(dict(regs), dict(pseudo or {}), {}).value


@pytest.fixture
def script_run() -> object:
    return run
