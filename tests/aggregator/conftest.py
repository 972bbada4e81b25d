"""Fixtures: ``ioinagg`` processes, a real PostgreSQL, and helpers reading agents' counters."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from agent.wire import agent_pb2, agent_pb2_grpc, aggregator_pb2, aggregator_pb2_grpc
from tests.aggregator.procs import AggProc, Postgres, find_pg_bin, start_aggregator, start_postgres
from tests.harness import AgentProc, Broker


@pytest.fixture
def aggregator_factory(
    mosquitto: Broker, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., AggProc]]:
    """Start ``ioinagg`` processes: ``aggregator_factory(id="agg-1", store=..., broker=...)``."""
    started: list[AggProc] = []

    # A group of this test's own: a stopped instance's persistent session keeps receiving its
    # share of the group's messages until it expires (see the README), so tests must not share.
    group = f"t{uuid.uuid4().hex[:8]}"

    def factory(*, broker: Broker | None = None, id: str = "agg-1", **kw: object) -> AggProc:
        kw.setdefault("group", group)
        agg = start_aggregator(broker or mosquitto, tmp_path / id, id=id, **kw)  # type: ignore[arg-type]
        started.append(agg)
        return agg

    yield factory
    for agg in started:
        agg.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for agg in started:
            print(f"--- ioinagg {agg.workdir.name} log ---\n{agg.log[-4000:]}")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A real PostgreSQL server (Debian's package) for the session."""
    if find_pg_bin() is None:
        pytest.fail("PostgreSQL is not installed: run `make test` (it installs it)")
    pg = start_postgres()
    yield pg
    pg.stop()


async def set_hook(agent: AgentProc, command: str) -> str:
    async with grpc.aio.insecure_channel(agent.address) as ch:
        resp = await agent_pb2_grpc.AgentStub(ch).SetHook(
            agent_pb2.SetHookRequest(command=command), timeout=5
        )
    return str(resp.hook.spec.id)


async def remove_hook(agent: AgentProc, hook_id: str) -> None:
    async with grpc.aio.insecure_channel(agent.address) as ch:
        await agent_pb2_grpc.AgentStub(ch).RemoveHook(agent_pb2.HookRef(id=hook_id), timeout=5)


async def counters(agent: AgentProc) -> dict[str, int]:
    async with grpc.aio.insecure_channel(agent.address) as ch:
        st = await agent_pb2_grpc.AgentStub(ch).GetStatus(agent_pb2.GetStatusRequest(), timeout=5)
    return {c.name: c.value for c in st.counters}


async def published(agent: AgentProc, within: float = 60.0) -> int:
    """The agent's events, once all of them are published (sequenced == published, stable)."""
    deadline = asyncio.get_running_loop().time() + within
    last = -1
    while asyncio.get_running_loop().time() < deadline:
        c = await counters(agent)
        if c["events_published"] == c["events_sequenced"] == last:
            return last
        last = c["events_published"] if c["events_published"] == c["events_sequenced"] else -1
        await asyncio.sleep(0.5)
    raise AssertionError(f"{agent.host_id} did not publish everything: {await counters(agent)}")


async def counted(agg: AggProc, since_s: int = 3600) -> dict[str, int]:
    """Events per host in the aggregator's store (Query by host)."""
    async with grpc.aio.insecure_channel(agg.address) as ch:
        reply = await aggregator_pb2_grpc.AggregatorStub(ch).Query(
            aggregator_pb2.QueryRequest(since_s=since_s, by=["host"]), timeout=10
        )
    return {r.keys[0]: r.events for r in reply.rows}


async def settle(agg: AggProc, want: dict[str, int], within: float = 60.0) -> dict[str, int]:
    """Wait until the aggregator counted at least ``want`` per host; returns its counts."""
    deadline = asyncio.get_running_loop().time() + within
    got: dict[str, int] = {}
    while asyncio.get_running_loop().time() < deadline:
        got = await counted(agg)
        if all(got.get(h, 0) >= n for h, n in want.items()):
            await asyncio.sleep(1.0)  # anything more arriving would be counted twice
            return await counted(agg)
        await asyncio.sleep(0.3)
    return got
