"""The C loop's condition bytecode agrees with the evaluator (reference interpreter here; the C
interpreter is checked against the same cases in tests/agent/kvm)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.script import ScriptAbort, compile_condition
from agent.script.bytecode import KVM_REGS, MAX_STACK, compile_bytecode, run

SIMPLE = [
    "$context == 3f8 && @al != 0",
    "@al == 99",
    "@eax + 1 > 5 || $context == 70",
    "(@rax >> 4) % 3 == 1",
    "-@rbx < 0",
    "!(@ah ^ 0x10) | ~@al & 1",
    "@rcx / 3 == 2",
    "@rdx == 0 || @rcx % 7 > 1",
    "@r8l << @cl != 0",
    "@rip - 0x100 >= -5 && @cf",
]
U64 = st.integers(0, (1 << 64) - 1) | st.sampled_from([0, 1, 2, 0x3F8, 0x99, 0x1000])


def scalar(source: str, port: int, regs: dict[str, int]) -> bool:
    try:
        return bool(compile_condition(source).run(dict(regs), {"context": port}, {}).value)
    except ScriptAbort:
        return False


@pytest.mark.parametrize("source", SIMPLE)
@settings(max_examples=60, deadline=None)
@given(port=st.sampled_from([0x3F8, 0x70, 0]), values=st.lists(U64, min_size=18, max_size=18))
def test_bytecode_matches_the_evaluator(source: str, port: int, values: list[int]) -> None:
    bc = compile_bytecode(compile_condition(source).tree)
    assert bc is not None
    assert bc.stack <= MAX_STACK
    regs = dict(zip(KVM_REGS, values, strict=True))
    assert run(bc.code, port, values) == scalar(source, port, regs)


@pytest.mark.parametrize(
    "source",
    [
        "$core == 1",
        "@cr3 == 0",
        'strlen("a") == 1',
        # may divide by zero: the abort is counted and announced in Python, not lost in C
        "@rcx / @rdx == 2",
        "@rdx == 0 || @rcx % @rdx > 1",
        "@rcx / 0 == 1",
    ],
)
def test_not_simple_conditions_stay_in_python(source: str) -> None:
    assert compile_bytecode(compile_condition(source).tree) is None


def test_a_condition_deeper_than_the_c_stack_stays_in_python() -> None:
    shallow = "1" + " + (1" * 10 + ")" * 10
    deep = "1" + " + (1" * 17 + ")" * 17  # right-nested: one stack slot per level
    assert compile_bytecode(compile_condition(shallow).tree) is not None
    assert compile_bytecode(compile_condition(deep).tree) is None
