"""Metrics and health of a real ioind: the Prometheus endpoint, and health following the broker."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agent.wire import agent_pb2, agent_pb2_grpc
from tests.harness import AgentProc, Broker, free_port

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text: str = resp.read().decode()
        return text


async def test_prometheus_endpoint_exports_the_pipeline(
    agent_factory: Callable[..., AgentProc],
) -> None:
    port = free_port()
    agent = agent_factory("obs-metrics", extra_toml=f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
    async with grpc.aio.insecure_channel(agent.address) as channel:
        stub = agent_pb2_grpc.AgentStub(channel)
        await stub.SetHook(agent_pb2.SetHookRequest(command="!ioin 0x3f8"), timeout=5)
    await asyncio.sleep(1.5)
    text = await asyncio.to_thread(scrape, port)
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert values["ioind_events_matched_total"] > 0
    assert values["ioind_events_published_total"] > 0
    assert values["ioind_broker_connected"] == 1
    assert values["ioind_hooks"] == 1
    assert 'ioind_events_dropped_total{stage="spool"}' in values
    assert values["ioind_publish_latency_seconds_count"] > 0
    assert "ioind_spool_bytes" in values
    assert values['ioind_rpc_refused_total{kind="stream"}'] == 0  # limits.max_streams
    assert values['ioind_rpc_active{kind="unary"}'] == 0
    assert values["ioind_spool_disk_full_total"] == 0


async def health(agent: AgentProc) -> int:
    async with grpc.aio.insecure_channel(agent.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service="ioin.v1.Agent"), timeout=5)
        status: int = reply.status
        return status


async def wait_health(agent: AgentProc, want: int, within: float = 15) -> int:
    deadline = asyncio.get_running_loop().time() + within
    # polling a remote service: there is no local event to wait on
    while (got := await health(agent)) != want and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    return got


async def test_health_follows_the_broker(
    agent_factory: Callable[..., AgentProc], fresh_mosquitto: Broker
) -> None:
    agent = agent_factory("obs-health", broker=fresh_mosquitto)
    assert await wait_health(agent, SERVING) == SERVING
    fresh_mosquitto.stop()
    assert await wait_health(agent, NOT_SERVING) == NOT_SERVING
    fresh_mosquitto.start()
    assert await wait_health(agent, SERVING) == SERVING
