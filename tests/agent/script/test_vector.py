"""The columnar path agrees with the per-event evaluator, element by element."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.script import ScriptAbort, compile_condition
from agent.script.vector import compile_columns, is_pure

CONDITIONS = [
    "$context == 3f8 && @al != 0",
    "@eax + 1 > 5 || $core == 1",
    "(@rax >> 4) % 3 == 1",
    "-@rax < 0",
    "!(@ah ^ 0x10) | ~@al & 1",
    "@rax / ($core) == 2",  # divides by zero where core is 0
    "$core == 0 || @rax / $core > 1",  # short-circuit protects the division
    "@rax << $core != 0",
    "@rax - 0x100 >= -5",
]
U64 = st.integers(0, (1 << 64) - 1)
ROWS = st.lists(st.tuples(U64 | st.sampled_from([0, 1, 2, 0x3F8, 0x41]), st.integers(0, 70),
                          st.sampled_from([0x3F8, 0x70, 0])), min_size=1, max_size=40)  # fmt: skip


def scalar(source: str, rax: int, core: int, port: int) -> bool | None:
    """The per-event evaluator's answer; None where the run aborts."""
    try:
        return bool(
            compile_condition(source).run({"rax": rax}, {"core": core, "context": port}, {}).value
        )
    except ScriptAbort:
        return None


@pytest.mark.parametrize("source", CONDITIONS)
@settings(max_examples=40, deadline=None)
@given(rows=ROWS)
def test_columns_match_the_scalar_evaluator(source: str, rows: list[tuple[int, int, int]]) -> None:
    program = compile_condition(source)
    assert program.pure
    cols = {
        "rax": np.array([r[0] for r in rows], dtype=np.uint64),
        "$core": np.array([r[1] for r in rows], dtype=np.uint64),
        "$context": np.array([r[2] for r in rows], dtype=np.uint64),
    }
    mask, aborted = compile_columns(program.tree)(cols, len(rows))
    want = [scalar(source, *r) for r in rows]
    assert mask.tolist() == [bool(w) for w in want]  # an aborted condition skips the event
    assert aborted == want.count(None)  # and counts as an abort, as it does per event


def test_missing_columns_read_zero() -> None:
    fn = compile_columns(compile_condition("@rbx == 0 && $pid == 0").tree)
    mask, aborted = fn({}, 3)
    assert (mask.tolist(), aborted) == ([True, True, True], 0)


@pytest.mark.parametrize("source", ["print(1)", ".g == 1", "x == 1", 'strlen("a") == 1'])
def test_impure_or_non_conditions_have_no_columnar_form(source: str) -> None:
    from agent.script import nodes
    from agent.script.parser import parse_condition
    from agent.script.statements import parse_script

    tree: nodes.Block | nodes.Expr
    tree = parse_script(source + ";") if source.startswith("print") else parse_condition(source)
    assert not is_pure(tree)
    with pytest.raises(ValueError, match="pure condition"):
        compile_columns(tree)
