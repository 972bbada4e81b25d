"""Scale-out on a real PostgreSQL: two ioinagg instances in one shared-subscription group."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Callable

import psycopg
import pytest

from tests.aggregator.conftest import counted, published, remove_hook, set_hook, settle
from tests.aggregator.procs import AggProc, Postgres, wait_for
from tests.harness import AgentProc

pytestmark = pytest.mark.slow


def fresh_db(pg: Postgres) -> str:
    name = f"agg_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg.url, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    return pg.url.rsplit("/", 1)[0] + "/" + name


async def test_two_instances_share_the_work_and_survive_a_sigkill(
    agent_factory: Callable[..., AgentProc],
    aggregator_factory: Callable[..., AggProc],
    postgres: Postgres,
) -> None:
    url = fresh_db(postgres)
    one = aggregator_factory(id="agg-1", store=url)
    two = aggregator_factory(id="agg-2", store=url)
    agents = [agent_factory(f"sc-{i}", sim_rate=3000.0) for i in range(3)]
    ids = [await set_hook(a, "!ioin") for a in agents]
    await asyncio.sleep(2.0)
    assert one.metrics()["ioinagg_events_total"] > 0  # both took a share
    assert two.metrics()["ioinagg_events_total"] > 0
    one.stop(signal.SIGKILL)  # mid-stream
    await asyncio.sleep(1.0)
    one.start()  # its session's unacknowledged messages come back to it
    await asyncio.sleep(1.0)
    for a, hook_id in zip(agents, ids, strict=True):
        await remove_hook(a, hook_id)
    want = {a.host_id: await published(a) for a in agents}
    assert await settle(two, want) == want
    assert await counted(one) == want  # one store, one answer


async def test_store_outage_is_counted_retried_and_loses_nothing(
    agent_factory: Callable[..., AgentProc],
    aggregator_factory: Callable[..., AggProc],
    postgres: Postgres,
) -> None:
    url = fresh_db(postgres)
    agg = aggregator_factory(id="agg-pg", store=url)
    agent = agent_factory("pgdown-a", sim_rate=2000.0)
    hook_id = await set_hook(agent, "!ioin")
    await asyncio.sleep(1.0)
    postgres.stop()
    try:
        wait_for(lambda: agg.metrics()["ioinagg_store_errors_total"] > 0, timeout=30)
        assert agg.proc is not None
        assert agg.proc.poll() is None
    finally:
        postgres.start()
    await remove_hook(agent, hook_id)
    want = {"pgdown-a": await published(agent)}
    assert await settle(agg, want, within=90) == want
    assert agg.log.count("store-failed") >= 1
