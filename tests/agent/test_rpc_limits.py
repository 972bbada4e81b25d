"""Caps on concurrent calls (issue 10, item 7), on a real grpc.aio server on port 0.

Before: 1,000 concurrent health ``Watch`` streams were all accepted. Now the streams over
``max_streams`` and the unary calls over ``max_rpcs`` get RESOURCE_EXHAUSTED naming the limit,
and are counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from agent.rpc.limits import LimitInterceptor

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
