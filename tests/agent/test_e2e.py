"""End to end with real parts: ioind processes, gRPC, mosquitto, a subscriber."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable

import grpc
import pytest

from agent.model import Direction
from agent.wire import agent_pb2, agent_pb2_grpc
from tests.busclient import collect
from tests.harness import AgentProc, Broker

pytestmark = pytest.mark.slow


def stub(agent: AgentProc) -> tuple[grpc.aio.Channel, agent_pb2_grpc.AgentAsyncStub]:
    channel = grpc.aio.insecure_channel(agent.address)
    return channel, agent_pb2_grpc.AgentStub(channel)


async def set_hook(agent: AgentProc, command: str) -> str:
    channel, s = stub(agent)
    async with channel:
        resp = await s.SetHook(agent_pb2.SetHookRequest(command=command), timeout=5)
    hook_id: str = resp.hook.spec.id
    return hook_id


async def ioinctl_push(command: str, *agents: AgentProc) -> str:
    """``ioinctl push`` (the real CLI, as a process); the hook id every agent answered."""
    hosts = ",".join(ag.address for ag in agents)
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "controller.cli", "push", command, "--hosts", hosts],
        *["--insecure", "-o", "json"],
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    ids: set[str] = {row["hook"]["id"] for row in json.loads(out)["hosts"]}
    assert len(ids) == 1
    return ids.pop()


async def test_hooks_reach_a_subscriber_for_exactly_the_hooked_port_pid_core(
    agent_factory: Callable[..., AgentProc], mosquitto: Broker
) -> None:
    a, b = agent_factory("e2e-a"), agent_factory("e2e-b")
    async with collect(mosquitto.port, "ioin/v1/+/events/#") as got:
        serial = await ioinctl_push("!ioin 0x3f8", a, b)
        rtc = await ioinctl_push("!ioin 0x70 pid 2 core 1", a)
        await asyncio.sleep(2.0)
    assert {g.host for g in got.events if g.event.hook_id == serial} == {"e2e-a", "e2e-b"}
    assert {(e.dir, e.port) for e in got.for_hook(serial)} == {(Direction.IN, 0x3F8)}
    rtc_events = got.for_hook(rtc)
    assert rtc_events
    assert {(e.dir, e.port, e.vm, e.vcpu) for e in rtc_events} == {(Direction.IN, 0x70, 2, 1)}
    for host in ("e2e-a", "e2e-b"):
        seqs = [g.event.seq for g in got.events if g.host == host]
        assert len(seqs) == len(set(seqs)), "duplicate sequence numbers"


async def test_removing_a_hook_stops_its_events(
    agent_factory: Callable[..., AgentProc], mosquitto: Broker
) -> None:
    a = agent_factory("e2e-rm")
    hook_id = await ioinctl_push("!ioin 0x3f8", a)
    await asyncio.sleep(0.5)
    rm = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "controller.cli", "hooks", "rm", hook_id],
        *["--hosts", a.address, "--insecure"],
        stdout=asyncio.subprocess.DEVNULL,
    )
    assert await rm.wait() == 0
    await asyncio.sleep(0.3)  # batches cut before the removal may still be in flight
    async with collect(mosquitto.port, "ioin/v1/e2e-rm/events/#") as got:
        await asyncio.sleep(1.5)
    assert got.for_hook(hook_id) == []


async def test_bad_requests_get_clear_codes_and_the_agent_survives(
    agent_factory: Callable[..., AgentProc],
) -> None:
    a = agent_factory("e2e-bad")
    channel, s = stub(a)
    async with channel:
        cases: list[tuple[object, grpc.StatusCode, str]] = [
            (
                s.SetHook(agent_pb2.SetHookRequest(command="!ioin 0x10000")),
                grpc.StatusCode.INVALID_ARGUMENT,
                "0x10000",
            ),
            (
                s.SetHook(agent_pb2.SetHookRequest(command="!ioin 3f8 bogus")),
                grpc.StatusCode.INVALID_ARGUMENT,
                "bogus",
            ),
            (s.SetHook(agent_pb2.SetHookRequest()), grpc.StatusCode.INVALID_ARGUMENT, "command"),
            (s.RemoveHook(agent_pb2.HookRef(id="nope")), grpc.StatusCode.NOT_FOUND, "nope"),
            (s.EnableHook(agent_pb2.HookRef(id="nope")), grpc.StatusCode.NOT_FOUND, "nope"),
            (s.Resume(agent_pb2.ResumeRequest(break_id="b99")), grpc.StatusCode.NOT_FOUND, "b99"),
            (s.StartVm(agent_pb2.VmSpec(name="x")), grpc.StatusCode.INVALID_ARGUMENT, "vms"),
        ]
        for call, code, needle in cases:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call  # type: ignore[misc]
            assert info.value.code() == code
            assert needle in (info.value.details() or "")
        status = await s.GetStatus(agent_pb2.GetStatusRequest(), timeout=5)
    assert status.host == "e2e-bad"
    assert status.backend == "sim"
    assert "break" in status.capabilities


async def test_set_hook_is_idempotent_and_enable_disable_work(
    agent_factory: Callable[..., AgentProc],
) -> None:
    a = agent_factory("e2e-idem")
    channel, s = stub(a)
    async with channel:
        req = agent_pb2.SetHookRequest(command="!ioin 0x3f8 core 1")
        first = await s.SetHook(req, timeout=5)
        again = await s.SetHook(agent_pb2.SetHookRequest(command="!IOIN 3F8 CORE 0n1"), timeout=5)
        assert first.created
        assert not again.created
        assert first.hook.spec.id == again.hook.spec.id
        off = await s.DisableHook(agent_pb2.HookRef(id=first.hook.spec.id), timeout=5)
        assert not off.enabled
        hooks = await s.ListHooks(agent_pb2.ListHooksRequest(), timeout=5)
    assert [h.spec.id for h in hooks.hooks] == [first.hook.spec.id]
    assert not hooks.hooks[0].enabled


async def test_birth_is_retained_and_the_will_says_offline(
    agent_factory: Callable[..., AgentProc], mosquitto: Broker
) -> None:
    a = agent_factory("e2e-life")
    await set_hook(a, "!ioin 0x70")
    await asyncio.sleep(0.3)
    async with collect(mosquitto.port, "ioin/v1/e2e-life/status") as got:
        await asyncio.sleep(0.5)
        birth = json.loads(got.other[-1][1])
        assert birth["online"] is True
        assert birth["backend"] == "sim"
        assert birth["epoch"]
        a.stop(9)  # SIGKILL: the broker publishes the will
        await asyncio.sleep(1.0)
    will = json.loads(got.other[-1][1])  # the identity stays: discovery lists it as offline
    assert (will["host"], will["online"], will["epoch"]) == ("e2e-life", False, birth["epoch"])
    assert will["address"] == a.address


async def test_restart_restores_hooks(agent_factory: Callable[..., AgentProc]) -> None:
    a = agent_factory("e2e-restart")
    hook_id = await set_hook(a, "!ioout 0x80")
    a.stop()
    a.start()
    channel, s = stub(a)
    async with channel:
        hooks = await s.ListHooks(agent_pb2.ListHooksRequest(), timeout=5)
    assert [h.spec.id for h in hooks.hooks] == [hook_id]
