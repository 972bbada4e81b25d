"""Caps on concurrent calls (issue 10, item 7), on a real grpc.aio server on port 0.

Before: 1,000 concurrent health ``Watch`` streams were all accepted. Now the streams over
``max_streams`` and the unary calls over ``max_rpcs`` get RESOURCE_EXHAUSTED naming the limit,
and are counted.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from agent.rpc.limits import LimitInterceptor
from agent.wire import agent_pb2, agent_pb2_grpc
from tests.harness import AgentProc

HOLD = "/test.Hold/Hold"  # a unary method that waits until released: holds a call open


async def server(limits: LimitInterceptor, release: asyncio.Event) -> tuple[grpc.aio.Server, int]:
    srv = grpc.aio.server(interceptors=[limits])
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, srv)
    await health.set("", health_pb2.HealthCheckResponse.SERVING)

    async def hold(request: bytes, context: Any) -> bytes:
        await release.wait()
        return request

    handler = grpc.unary_unary_rpc_method_handler(hold)
    srv.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("test.Hold", {"Hold": handler})]
    )
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    return srv, port


@pytest.fixture
async def served() -> AsyncIterator[tuple[LimitInterceptor, grpc.aio.Channel, asyncio.Event]]:
    limits, release = LimitInterceptor(max_rpcs=5, max_streams=8), asyncio.Event()
    srv, port = await server(limits, release)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield limits, channel, release
    finally:
        release.set()
        await channel.close(None)
        await srv.stop(None)


async def test_streams_over_the_cap_are_refused_and_counted(
    served: tuple[LimitInterceptor, grpc.aio.Channel, asyncio.Event],
) -> None:
    limits, channel, _ = served
    stub = health_pb2_grpc.HealthStub(channel)
    calls = [stub.Watch(health_pb2.HealthCheckRequest()) for _ in range(40)]
    firsts = await asyncio.gather(*(c.read() for c in calls), return_exceptions=True)
    ok = [f for f in firsts if isinstance(f, health_pb2.HealthCheckResponse)]
    refused = [f for f in firsts if isinstance(f, grpc.aio.AioRpcError)]
    assert (len(ok), len(refused)) == (8, 32)
    assert {e.code() for e in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert "serves 8 at once (limits.max_streams)" in str(refused[0].details())
    assert (limits.counts.streams_active, limits.counts.streams_refused) == (8, 32)
    for c in calls:
        c.cancel()
    for _ in range(100):  # the server notices the cancellations
        if limits.counts.streams_active == 0:
            break
        await asyncio.sleep(0.02)
    assert limits.counts.streams_active == 0
    again = stub.Watch(health_pb2.HealthCheckRequest())
    assert (await again.read()).status == health_pb2.HealthCheckResponse.SERVING
    again.cancel()


async def test_unary_calls_over_the_cap_are_refused_and_counted(
    served: tuple[LimitInterceptor, grpc.aio.Channel, asyncio.Event],
) -> None:
    limits, channel, release = served
    hold = channel.unary_unary(HOLD, None, None)  # raw bytes both ways
    held = [asyncio.ensure_future(hold(b"x")) for _ in range(5)]
    for _ in range(100):
        if limits.counts.rpc_active == 5:
            break
        await asyncio.sleep(0.02)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await hold(b"y")
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "serves 5 at once (limits.max_rpcs)" in str(info.value.details())
    check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    with pytest.raises(grpc.aio.AioRpcError):
        await check  # health Check is a unary call too
    release.set()
    assert await asyncio.gather(*held) == [b"x"] * 5
    assert limits.counts.as_counters() == {
        "rpc_active": 0,
        "rpc_refused": 2,
        "streams_active": 0,
        "streams_refused": 0,
    }


# -- against a real ioind -------------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


@pytest.mark.slow
async def test_a_real_agent_caps_1000_watch_streams_and_hooks_and_echoes_no_megabyte(
    agent_factory: Callable[..., AgentProc],
) -> None:
    limits = "[limits]\nmax_streams = 16\nmax_hooks = 3\n"
    a = agent_factory("caps", extra_toml=limits, sim_rate=1.0)  # quiet: RSS is the calls
    async with grpc.aio.insecure_channel(a.address) as channel:
        agent = agent_pb2_grpc.AgentStub(channel)
        rss = []
        for flood in range(1, 4):  # thrice: what a flood costs must not stay and add up
            health = health_pb2_grpc.HealthStub(channel)
            calls = [health.Watch(health_pb2.HealthCheckRequest()) for _ in range(1000)]
            firsts = await asyncio.gather(*(c.read() for c in calls), return_exceptions=True)
            refused = [f for f in firsts if isinstance(f, grpc.aio.AioRpcError)]
            assert len(refused) == 1000 - 16
            assert {e.code() for e in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
            status = await agent.GetStatus(agent_pb2.GetStatusRequest(), timeout=10)
            counters = {c.name: c.value for c in status.counters}
            assert (counters["streams_active"], counters["streams_refused"]) == (16, 984 * flood)
            for c in calls:
                c.cancel()
            await asyncio.sleep(1)
            rss.append(rss_kb(a.pid))
        # measured 1-12 MB per flood, once the allocator's arenas settle; before the caps every
        # stream was accepted and each flood held +25 MB more. One allocator jump is noise; a
        # leak grows on every flood.
        growth = [later - earlier for earlier, later in itertools.pairwise(rss)]
        assert min(growth) < 12_000, f"RSS grew {growth} kB on every flood after the first"

        for port in range(3):
            await agent.SetHook(agent_pb2.SetHookRequest(command=f"!ioin {port}"), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as full:
            await agent.SetHook(agent_pb2.SetHookRequest(command="!ioin 3"), timeout=10)
        assert full.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "hook limit reached: the agent holds 3 hooks" in str(full.value.details())

        with pytest.raises(grpc.aio.AioRpcError) as missing:  # overflowed 16 KB of metadata
            await agent.DisableHook(agent_pb2.HookRef(id="x" * 2**20), timeout=10)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        assert len(missing.value.details() or "") < 200
