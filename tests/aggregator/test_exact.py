"""Exactly-once with real parts: mosquitto, sim agents with fixed seeds, ioinagg processes."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import pytest

from tests.aggregator.conftest import counters, published, remove_hook, set_hook, settle
from tests.aggregator.procs import AggProc
from tests.aggregator.proxy import Proxy
from tests.harness import AgentProc, Broker

pytestmark = pytest.mark.slow


async def run_load(agents: list[AgentProc], seconds: float, command: str = "!ioin") -> None:
    ids = [await set_hook(a, command) for a in agents]
    await asyncio.sleep(seconds)
    for a, hook_id in zip(agents, ids, strict=True):
        await remove_hook(a, hook_id)


async def test_counts_equal_the_agents_counters(
    agent_factory: Callable[..., AgentProc], aggregator_factory: Callable[..., AggProc]
) -> None:
    agg = aggregator_factory()
    agents = [agent_factory("ex-0", sim_rate=3000.0)]
    agents.append(agent_factory("ex-json", sim_rate=1000.0, mqtt_extra='format = "json"\n'))
    await run_load(agents, 3.0)
    want = {a.host_id: await published(a) for a in agents}
    assert all(n > 1000 for n in want.values())
    assert await settle(agg, want) == want
    m = agg.metrics()
    assert m["ioinagg_duplicates_total"] == 0
    assert m["ioinagg_events_total"] == sum(want.values())


async def test_sigkill_and_restart_change_nothing(
    agent_factory: Callable[..., AgentProc], aggregator_factory: Callable[..., AggProc]
) -> None:
    agg = aggregator_factory()
    agents = [agent_factory(f"kill-{i}", sim_rate=3000.0) for i in range(2)]
    ids = [await set_hook(a, "!ioin") for a in agents]
    await asyncio.sleep(1.5)
    agg.stop(signal.SIGKILL)  # mid-stream: messages taken, maybe committed, not acknowledged
    await asyncio.sleep(1.0)
    agg.start()  # same id: the same persistent session, redelivering what was not acknowledged
    await asyncio.sleep(1.5)
    for a, hook_id in zip(agents, ids, strict=True):
        await remove_hook(a, hook_id)
    want = {a.host_id: await published(a) for a in agents}
    assert await settle(agg, want) == want


async def test_agent_side_broker_outage_and_replay_change_nothing(
    agent_factory: Callable[..., AgentProc],
    aggregator_factory: Callable[..., AggProc],
    mosquitto: Broker,
) -> None:
    """The agents lose the broker (their network is cut) while the aggregator stays connected;
    they spool, then replay when it returns."""
    proxy = Proxy(mosquitto.port)
    try:
        agg = aggregator_factory()
        via = Broker(proxy.port, mosquitto.workdir)  # the agents' view of the broker
        agents = [agent_factory(f"out-{i}", broker=via, sim_rate=3000.0) for i in range(2)]
        ids = [await set_hook(a, "!ioin") for a in agents]
        await asyncio.sleep(1.0)
        proxy.cut()
        await asyncio.sleep(2.0)
        proxy.restore()
        await asyncio.sleep(1.0)
        for a, hook_id in zip(agents, ids, strict=True):
            await remove_hook(a, hook_id)
        want = {a.host_id: await published(a) for a in agents}
        connects = [(await counters(a))["broker_connects"] for a in agents]
        assert min(connects) >= 2, connects  # the outage did cut them off
        assert await settle(agg, want) == want
    finally:
        proxy.close()
