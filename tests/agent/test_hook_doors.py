"""Issue 10 item 1, against real ioind processes: a hook is validated one way whichever door it
comes in by (command, spec, both), and what SetHook answered is what a restart brings back."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from agent.hooks.lang import parse
from agent.state import HookStore
from agent.wire import agent_pb2, agent_pb2_grpc, hooks_pb2
from tests.harness import AgentProc

pytestmark = pytest.mark.slow

IN, OUT = hooks_pb2.DIRECTION_IN, hooks_pb2.DIRECTION_OUT


async def call_set(
    agent: AgentProc, request: agent_pb2.SetHookRequest
) -> agent_pb2.SetHookResponse:
    async with grpc.aio.insecure_channel(agent.address) as channel:
        reply: agent_pb2.SetHookResponse = await agent_pb2_grpc.AgentStub(channel).SetHook(
            request, timeout=5
        )
        return reply


async def list_hooks(agent: AgentProc) -> list[hooks_pb2.Hook]:
    async with grpc.aio.insecure_channel(agent.address) as channel:
        reply = await agent_pb2_grpc.AgentStub(channel).ListHooks(
            agent_pb2.ListHooksRequest(), timeout=5
        )
    return list(reply.hooks)


async def refusal(agent: AgentProc, request: agent_pb2.SetHookRequest) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call_set(agent, request)
    return info.value


async def test_a_hook_set_as_a_bare_spec_survives_a_restart_unchanged(
    agent_factory: Callable[..., AgentProc],
) -> None:
    a = agent_factory("doors-spec")
    spec = hooks_pb2.HookSpec(id="rtc", direction=OUT, port=0x70, set_value=5, rate=9, burst=3)
    spec.stage, spec.immediate = hooks_pb2.STAGE_PRE, True
    answered = (await call_set(a, agent_pb2.SetHookRequest(spec=spec, disabled=True))).hook
    assert (answered.spec, answered.enabled) == (spec, False)
    a.stop()
    a.start()
    [restored] = await list_hooks(a)
    assert (restored.spec, restored.enabled) == (answered.spec, False)


DISAGREE = [
    # the case: the spec says OUT 0x70 set 5, the command IN 0x3f8
    (hooks_pb2.HookSpec(direction=OUT, port=0x70, set_value=5), "!ioin 0x3f8", "direction"),
    (hooks_pb2.HookSpec(direction=IN, port=0x70), "!ioin 0x3f8", "port"),
    (parse("!ioin 0x3f8 core 1"), "!ioin 0x3f8 core 2", "core"),
    (parse("!ioin 0x3f8", hook_id="a"), "!ioin 0x3f8 break", "break_"),
]


async def test_a_request_whose_command_and_spec_disagree_is_refused_naming_the_field(
    agent_factory: Callable[..., AgentProc],
) -> None:
    a = agent_factory("doors-disagree")
    for spec, command, field in DISAGREE:
        err = await refusal(a, agent_pb2.SetHookRequest(spec=spec, command=command))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"disagree on '{field}'" in (err.details() or ""), field
    assert await list_hooks(a) == []


async def test_a_command_with_an_id_carrying_spec_or_its_own_spec_is_accepted(
    agent_factory: Callable[..., AgentProc],
) -> None:
    a = agent_factory("doors-agree")
    named = await call_set(
        a, agent_pb2.SetHookRequest(spec=hooks_pb2.HookSpec(id="uart"), command="!ioin 3f8")
    )
    assert named.hook.spec == parse("!ioin 3f8", hook_id="uart")
    both = parse("!ioout 0x70 core 1 rate 5")
    pushed = await call_set(a, agent_pb2.SetHookRequest(spec=both, command=both.command))
    assert pushed.hook.spec == both


def spec_of(**fields: object) -> hooks_pb2.HookSpec:
    """An IN hook on every port as the parser builds one, with ``fields`` set on top."""
    spec = hooks_pb2.HookSpec(id="h", direction=IN, stage=hooks_pb2.STAGE_PRE, immediate=True)
    for name, value in fields.items():
        setattr(spec, name, value)
    return spec


RULES: list[tuple[str, dict[str, object], str]] = [
    ("!ioin sc on stage post", {"short_circuit": True, "stage": hooks_pb2.STAGE_POST}, "sc"),
    ("!ioin sc on stage all", {"short_circuit": True, "stage": hooks_pb2.STAGE_ALL}, "sc"),
    ("!ioin burst 5", {"burst": 5}, "burst"),
]


async def test_a_spec_is_refused_exactly_as_the_parser_refuses_its_command(
    agent_factory: Callable[..., AgentProc],
) -> None:
    a = agent_factory("doors-rules")
    for command, fields, token in RULES:
        by_command = await refusal(a, agent_pb2.SetHookRequest(command=command))
        by_spec = await refusal(a, agent_pb2.SetHookRequest(spec=spec_of(**fields)))
        assert by_spec.code() == by_command.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert by_spec.details() == by_command.details()
        assert token in (by_spec.details() or ""), command
    assert await list_hooks(a) == []


async def test_an_out_of_range_stage_is_invalid_argument_naming_stage(
    agent_factory: Callable[..., AgentProc],
) -> None:
    a = agent_factory("doors-stage")
    spec = hooks_pb2.HookSpec(id="h", direction=IN)
    spec.stage = 99  # type: ignore[assignment]
    err = await refusal(a, agent_pb2.SetHookRequest(spec=spec))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "stage" in (err.details() or "")
    assert "99" in (err.details() or "")


async def test_a_format_1_state_file_still_loads_and_is_imported_into_the_database(
    agent_factory: Callable[..., AgentProc], tmp_path: Path
) -> None:
    state = tmp_path / "doors-old" / "state"
    state.mkdir(parents=True)
    old = [
        {"id": "uart", "command": "!ioin 0x3f8 core 1", "enabled": False},
        {"id": "bare", "command": "", "enabled": True},  # a format-1 agent lost this one already
    ]
    (state / "hooks.json").write_text(json.dumps({"hooks": old}))
    a = agent_factory("doors-old")
    hooks = await list_hooks(a)
    assert [(h.spec, h.enabled) for h in hooks] == [
        (parse("!ioin 0x3f8 core 1", hook_id="uart"), False)
    ]
    assert not (state / "hooks.json").exists()
    assert (state / "hooks.json.imported").exists()
    saved = HookStore(state).load()
    assert [(h.spec.id, h.spec.core, h.enabled) for h in saved] == [("uart", 1, False)]
