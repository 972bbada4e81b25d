"""HookScript: what a backend runs per hook — gate, script, globals, aborts, capabilities."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from agent.errors import CapabilityError
from agent.model import Capability
from agent.script.hook import HookScript


def test_condition_gates_and_columns_agree() -> None:
    h = HookScript("h", condition="$context == 3f8 && @al != 0")
    assert h.columnar
    assert h.gate({"rax": 0x41}, {"context": 0x3F8})
    assert not h.gate({"rax": 0x100}, {"context": 0x3F8})
    cols = {
        "$context": np.array([0x3F8, 0x3F8, 0x70], dtype=np.uint64),
        "rax": np.array([0x41, 0x100, 0x41], dtype=np.uint64),
    }
    assert h.mask(cols, 3).tolist() == [True, False, False]


def test_a_script_or_an_impure_condition_is_not_columnar() -> None:
    assert not HookScript("h", condition="1", script="x = 1;").columnar
    assert not HookScript("h", condition='strlen("a") == 1').columnar
    assert HookScript("h").gate({}, {})  # no condition: every hit passes


def test_script_changes_registers_and_keeps_globals() -> None:
    h = HookScript("h", script="@al = @al + 1; .n = .n + 1;")
    regs = {"rax": 0xFF00}
    for _ in range(3):
        result = h.run(regs, {})
        assert result is not None
    assert regs["rax"] == 0xFF03
    assert h.globals == {"n": 3}


def test_an_aborted_run_changes_nothing_and_is_counted_once_a_second() -> None:
    h = HookScript("h", script="@eax = 7; .n = .n + 1; x = 1 / ($context - 70);")
    regs = {"rax": 1}
    assert h.run(regs, {"context": 0x70}) is None  # aborted: division by zero
    assert regs == {"rax": 1}
    assert h.globals == {}
    assert h.run(regs, {"context": 0x71}) is not None
    assert regs["rax"] == 7
    assert h.globals == {"n": 1}
    h.run(regs, {"context": 0x70})
    notice = h.abort_notice()
    assert notice == {"hook_id": "h", "aborts": 2, "total": 2, "reason": "division by zero"}
    h.run(regs, {"context": 0x70})
    assert h.abort_notice() is None  # rate-limited: the next one is due in a second
    assert h.aborts == 3


def test_an_aborted_condition_is_false() -> None:
    h = HookScript("h", condition="1 / $core")
    assert not h.gate({}, {"core": 0})
    assert h.gate({}, {"core": 1})
    assert h.aborts == 1


def test_capabilities_are_checked_naming_the_token() -> None:
    h = HookScript("h", condition="@al == 1", script="event_sc(1); @al = 2;")
    assert set(h.needs) == {Capability.SKIP, Capability.MODIFY}
    h.check({Capability.SKIP, Capability.MODIFY}, "sim")
    with pytest.raises(CapabilityError) as info:
        h.check({Capability.IN, Capability.OUT}, "kvm-trace")
    assert info.value.capability == Capability.SKIP
    assert "script: event_sc() at line 1, column 1" in str(info.value)


def test_globals_are_shared_safely_by_vcpu_threads() -> None:
    h = HookScript("h", script=".n = .n + 1;")

    def vcpu() -> None:
        for _ in range(2000):
            h.run({}, {})

    threads = [threading.Thread(target=vcpu) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert h.globals == {"n": 8000}


def test_script_needs_lists_the_script_capability_first() -> None:
    from agent.script.hook import script_needs

    assert script_needs("", "") == []
    assert script_needs("@al == 1", "") == [(Capability.SCRIPT, "condition")]
    needs = script_needs("", "@al = 1;")
    assert needs == [
        (Capability.SCRIPT, "script"),
        (Capability.MODIFY, "script: writing @al at line 1, column 1"),
    ]
