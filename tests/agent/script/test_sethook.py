"""Scripts at SetHook, through the agent's hook service (every door validates the same way):
compile errors and capability refusals come here, naming the token, never at a hit."""

from __future__ import annotations

import pytest

from agent.backends.kvm_trace import KvmTraceBackend
from agent.backends.sim import SimBackend
from agent.errors import CapabilityError, HookSyntaxError
from agent.hooks.lang import parse
from agent.hooks.service import HookService
from agent.hooks.table import HookTable
from agent.model import Capability
from agent.wire import hooks_pb2


def service(caps: frozenset[Capability], name: str) -> HookService:
    return HookService(
        HookTable(), None, capabilities=caps, backend_name=name, changed=lambda: None
    )


TRACE = service(KvmTraceBackend.capabilities, "kvm-trace")
SIM = service(SimBackend.capabilities, "sim")


@pytest.mark.parametrize(
    ("script", "capability", "where"),
    [
        ("@al = 1;", Capability.MODIFY, "script: writing @al at line 1, column 1"),
        ("x = 1; event_sc(1);", Capability.SKIP, "script: event_sc() at line 1, column 8"),
        ("pause();", Capability.BREAK, "script: pause() at line 1, column 1"),
        ("eb(@rsp, 1);", Capability.MEMORY, "script: eb() at line 1, column 1"),
        ("x = dq(@rsp);", Capability.MEMORY, "script: dq() at line 1, column 5"),
    ],
)
def test_kvm_trace_refuses_scripts_that_act_naming_the_capability(
    script: str, capability: Capability, where: str
) -> None:
    with pytest.raises(CapabilityError) as info:
        TRACE.set(command=f"!ioin 70 script {{ {script} }}")
    assert info.value.capability == capability
    assert info.value.field == where
    assert info.value.backend == "kvm-trace"


def test_kvm_trace_takes_scripts_that_only_observe() -> None:
    hook, created, _ = TRACE.set(
        command='!ioin 70 condition { @al != 0 } script { .n = .n + 1; printf("%d", .n); }'
    )
    assert created
    assert hook.spec.condition == "@al != 0"


def test_sim_has_no_guest_memory() -> None:
    with pytest.raises(CapabilityError, match="lacks capability 'memory'"):
        SIM.set(command="!ioin 70 script { x = poi(@rsp); }")


def test_a_bare_spec_with_a_bad_script_is_refused_like_a_command() -> None:
    spec = hooks_pb2.HookSpec(id="bad", direction=hooks_pb2.DIRECTION_IN, script="x = y;")
    with pytest.raises(HookSyntaxError, match="unknown variable 'y'") as info:
        SIM.set(spec=spec)
    assert info.value.token == "y"
    with pytest.raises(HookSyntaxError, match="unknown variable 'y'"):
        parse("!ioin script { x = y; }")


def test_a_backend_without_scripts_refuses_any_block() -> None:
    bare = service(frozenset({Capability.IN, Capability.OUT}), "old")
    with pytest.raises(CapabilityError, match="lacks capability 'script' \\(condition\\)"):
        bare.set(command="!ioin 70 condition { 1 }")
