"""A script's event_enable / event_disable / event_clear act on hooks (issue 13, item 1).

In-process agents (the runtime ``ioind local`` builds: sim backend, hook service, pipeline) and a
real ``ioind`` process (persisted across a restart, announced on the bus's notices topic).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import grpc

from agent.build import build_local
from agent.config import AgentConfig, GrpcConfig, SimConfig
from agent.hooks.requests import HookRequest, RequestInbox
from agent.notices import Notice, NoticeKind
from agent.pipeline import Batch
from agent.rpc.policy import agent_policy
from agent.runtime import Runtime
from agent.script.hook import event_id
from agent.wire import agent_pb2, agent_pb2_grpc, hooks_pb2
from tests.busclient import collect
from tests.harness import AgentProc, Broker


class Collector:
    """The runtime's output: what the pipeline cut and the notices, kept."""

    def __init__(self) -> None:
        self.events: dict[str, int] = {}
        self.notices: list[Notice] = []

    def emit(self, hook_id: str, batch: Batch) -> None:
        self.events[hook_id] = self.events.get(hook_id, 0) + len(batch)

    def notice(self, notice: Notice) -> None:
        self.notices.append(notice)

    def results(self) -> set[tuple[object, object]]:
        return {(f["target"], f["result"]) for k, f in self.notices if k is NoticeKind.SCRIPT_HOOK}


def local(tmp_path: Path, out: Collector, rate: float = 5000.0) -> Runtime:
    config = AgentConfig(
        host="box", state_dir=str(tmp_path), sim=SimConfig(rate=rate), grpc=GrpcConfig()
    )
    return build_local(config, out)


def put(runtime: Runtime, hook_id: str, command: str, *, enabled: bool = True) -> None:
    runtime.hooks.set(command=command, spec=hooks_pb2.HookSpec(id=hook_id), enabled=enabled)


async def running(runtime: Runtime, seconds: float) -> None:
    task = asyncio.create_task(runtime.run())
    await asyncio.sleep(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_script_disables_removes_and_enables_hooks(tmp_path: Path) -> None:
    out = Collector()
    runtime = local(tmp_path, out)
    script = 'event_disable("b"); event_clear("c"); event_enable("d"); event_disable("nope");'
    async with runtime:
        put(runtime, "a", f"!ioin 3f8 script {{ {script} }}")
        put(runtime, "b", "!ioin 70")
        put(runtime, "c", "!ioin 71")
        put(runtime, "d", "!ioin 60", enabled=False)
        await running(runtime, 0.5)
        seen = dict(out.events)
        await running(runtime, 0.3)
    table = runtime.hooks.table
    assert not table.get("b").enabled
    assert "c" not in table
    assert table.get("d").enabled
    assert out.results() == {
        ("b", "disabled"),
        ("c", "removed"),
        ("c", "unknown hook"),  # asked again once c was gone
        ("d", "enabled"),
        ("nope", "unknown hook"),
    }
    assert out.events.get("b", 0) == seen.get("b", 0)  # b stopped firing
    assert out.events.get("d", 0) > seen.get("d", 0)  # d fires now
    counts = table.requests.counters()
    assert counts["script_requests_unknown"] >= 1
    assert counts["script_requests_dropped"] == 0


async def test_a_number_names_the_hooks_whose_event_id_it_is(tmp_path: Path) -> None:
    out = Collector()
    runtime = local(tmp_path, out)
    async with runtime:
        put(runtime, "a", f"!ioin 3f8 script {{ event_disable(0n{event_id('b')}); }}")
        put(runtime, "b", "!ioin 70")
        await running(runtime, 0.4)
    assert not runtime.hooks.table.get("b").enabled
    assert out.results() == {(event_id("b"), "disabled")}


async def test_the_inbox_is_bounded_coalesces_and_counts_its_drops() -> None:
    inbox = RequestInbox(max_pending=2)
    for target in ("x", "x", "y", "z"):  # x twice: coalesced; z: one too many, dropped
        inbox.post(HookRequest("a", "event_disable", target))
    applied: list[object] = []
    notices: list[Notice] = []

    def apply(request: HookRequest) -> str:
        applied.append(request.target)
        return "disabled"

    task = asyncio.create_task(inbox.serve(apply, notices.append))
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert applied == ["x", "y"]
    counts = inbox.counters()
    assert (counts["script_requests_coalesced"], counts["script_requests_dropped"]) == (1, 1)
    assert [f for _, f in notices if f.get("result") == "dropped"] == [
        {"result": "dropped", "requests": 1, "total": 1}
    ]


def test_a_script_that_changes_hooks_needs_admin() -> None:
    need = agent_policy(lambda hook_id: None)
    request = agent_pb2.SetHookRequest(command='!ioin 3f8 script { event_clear("b"); }')
    judged = need("/ioin.v1.Agent/SetHook", request)
    assert judged.role.label == "admin"
    assert "script: event_clear()" in judged.what
    plain = need("/ioin.v1.Agent/SetHook", agent_pb2.SetHookRequest(command="!ioin 3f8"))
    assert plain.role.label == "operator"


async def test_a_real_agent_persists_and_announces_what_a_script_did(
    agent_factory: Callable[..., AgentProc], mosquitto: Broker
) -> None:
    agent = agent_factory("script-hooks")
    topic = f"ioin/v1/{agent.host_id}/notices"
    async with (
        collect(mosquitto.port, topic) as got,
        grpc.aio.insecure_channel(agent.address) as channel,
    ):
        stub = agent_pb2_grpc.AgentStub(channel)
        for hook_id, command in (
            ("b", "!ioin 70"),
            ("a", '!ioin 3f8 script { event_disable("b"); }'),
        ):
            spec = hooks_pb2.HookSpec(id=hook_id)
            await stub.SetHook(agent_pb2.SetHookRequest(command=command, spec=spec), timeout=5)
        for _ in range(50):
            await asyncio.sleep(0.1)
            if any(b"script-hook" in payload for _, payload in got.other):
                break
    said = [json.loads(p) for _, p in got.other if b"script-hook" in p]
    assert said
    assert (said[0]["target"], said[0]["result"]) == ("b", "disabled")
    agent.stop()
    agent.start()  # the change was saved like a DisableHook
    async with grpc.aio.insecure_channel(agent.address) as channel:
        stub = agent_pb2_grpc.AgentStub(channel)
        hooks = await stub.ListHooks(agent_pb2.ListHooksRequest(), timeout=5)
    assert {h.spec.id: h.enabled for h in hooks.hooks} == {"a": True, "b": False}
