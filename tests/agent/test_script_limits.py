"""A script can never make the agent unresponsive (issue 13, item 1's limits; review item 4).

A real ``ioind`` on the sim, with a hook whose script loops forever (every run spends HyperDbg's
1,000,000 steps): gRPC keeps answering quickly, and the hook can be removed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import grpc

from agent.backends.sim.backend import SimBackend
from agent.backends.testing import ListSink
from agent.config import SimConfig
from agent.hooks import lang
from agent.hooks.table import HookTable
from agent.wire import agent_pb2, agent_pb2_grpc
from tests.harness import AgentProc

BOUND_S = 0.5
ENDLESS = "!ioin 3f8 script { while (1) { } }"


async def timed(call: Callable[[], object]) -> float:
    started = time.monotonic()
    await call()  # type: ignore[misc]
    return time.monotonic() - started


async def test_an_endless_script_leaves_the_agent_responsive(
    agent_factory: Callable[..., AgentProc],
) -> None:
    agent = agent_factory("endless-script", sim_rate=5000.0)
    async with grpc.aio.insecure_channel(agent.address) as channel:
        stub = agent_pb2_grpc.AgentStub(channel)
        reply = await stub.SetHook(agent_pb2.SetHookRequest(command=ENDLESS), timeout=5)
        status = agent_pb2.GetStatusRequest()
        waits = []
        for _ in range(8):
            await asyncio.sleep(0.25)
            waits.append(await timed(lambda: stub.GetStatus(status, timeout=5)))
        counters = {c.name: c.value for c in (await stub.GetStatus(status, timeout=5)).counters}
        ref = agent_pb2.HookRef(id=reply.hook.spec.id)
        removal = await timed(lambda: stub.RemoveHook(ref, timeout=5))
    assert max(waits) < BOUND_S, waits
    assert removal < BOUND_S
    assert counters["sim_accesses_shed"] > 0  # the script slowed its simulated guest instead


async def test_a_step_with_scripts_runs_off_the_loop_and_sheds_past_its_slice() -> None:
    table = HookTable()
    table.set(lang.parse(ENDLESS, hook_id="e"))
    backend = SimBackend(SimConfig(rate=5000))
    sink = ListSink()
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(0.01)
            ticks.append(time.monotonic() - started)

    task = asyncio.create_task(backend.run(table, sink, lambda: None))
    clock = asyncio.create_task(ticker())
    await asyncio.sleep(1.0)
    task.cancel()
    clock.cancel()
    await asyncio.gather(task, clock, return_exceptions=True)
    assert max(ticks) < BOUND_S / 2, max(ticks)  # the loop kept its 10 ms ticks
    assert backend.shed > 0
    assert {f["hook_id"] for k, f in sink.notices if k == "script-abort"} == {"e"}
