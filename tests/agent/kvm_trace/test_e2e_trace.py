"""The fleet path on kvm-trace: a real ioind, hooks pushed over gRPC, events through mosquitto.

What a subscriber receives for each QEMU guest equals an independent count of that process's
``kvm_pio`` reads of port 0x70 from a second tracefs instance, and a pid hook sees one guest only.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import grpc
import pytest

from agent.wire import agent_pb2, agent_pb2_grpc
from tests.agent.kvm_trace.conftest import Guest, TextCounter
from tests.busclient import collect
from tests.harness import AgentProc, Broker

RTC_INDEX = 0x70


@pytest.mark.tracefs
@pytest.mark.qemu
async def test_subscriber_gets_every_hooked_read_of_each_guest(
    agent_factory: Callable[..., AgentProc],
    mosquitto: Broker,
    qemu_vm: Callable[..., Guest],
    text_counter: Callable[[str], TextCounter],
) -> None:
    agent = agent_factory("trace-e2e", backend="kvm-trace")
    counter = text_counter(f"rw==0&&port=={RTC_INDEX:#x}")
    first, second = qemu_vm("e2e-first", debug_threads=True), qemu_vm("e2e-second")
    async with collect(mosquitto.port, "ioin/v1/trace-e2e/events/#") as got:
        async with grpc.aio.insecure_channel(agent.address) as channel:
            stub = agent_pb2_grpc.AgentStub(channel)
            every = await stub.SetHook(agent_pb2.SetHookRequest(command="!ioin 0x70"))
            only = await stub.SetHook(
                agent_pb2.SetHookRequest(command=f"!ioin 0x70 pid 0n{first.pid}")
            )
            await asyncio.sleep(1.5)  # the agent's filter (pid -> vCPU threads) is in place
            first.cont()
            second.cont()
            await asyncio.sleep(3.0)
            first.kill()
            second.kill()
            await asyncio.sleep(1.5)  # readers drain, batches are published and delivered
        counter.stop()
    expected = {g.pid: counter.count(g.pid, f"pio_read at {RTC_INDEX:#x}") for g in (first, second)}
    assert all(n > 0 for n in expected.values()), expected
    by_hook_vm = Counter((g.event.hook_id, g.event.vm) for g in got.events)
    every_id, only_id = every.hook.spec.id, only.hook.spec.id
    assert by_hook_vm[(every_id, first.pid)] == expected[first.pid]
    assert by_hook_vm[(every_id, second.pid)] == expected[second.pid]
    assert by_hook_vm[(only_id, first.pid)] == expected[first.pid]
    assert {vm for hook, vm in by_hook_vm if hook == only_id} == {first.pid}
    names = {g.event.vm: g.event.vm_name for g in got.events}
    assert (names[first.pid], names[second.pid]) == ("e2e-first", "e2e-second")
