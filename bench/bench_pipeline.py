"""The event pipeline end to end: sim backend → ioind → mosquitto → a subscriber.

Measured in one run, on this machine:
- the broker's own ceiling: QoS 1 messages/s of 100 bytes with mosquitto's C clients;
- end-to-end events/s with the sim generating as fast as it can (every access hooked), as a ratio
  to that ceiling (how many events one broker message carries, in effect);
- hit-to-subscriber latency p50 / p99 at a fixed 50k events/s;
- the agent's RSS at the end of the flood;
- the spool: SQLite (WAL) insert + delete per batch against appending to a segment file.
Targets (issue 5): >= 250k events/s, p99 <= 200 ms at 50k/s, RSS <= 100 MB.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiomqtt
import grpc

from agent.batch import batch_size
from agent.publish.spool import Spool
from agent.wire import agent_pb2, agent_pb2_grpc, events_pb2
from bench.common import Row, emit
from tests.harness import AgentProc, Broker, start_agent, start_broker

BENCH = "pipeline"


def broker_ceiling(broker: Broker, n: int = 20_000) -> float:
    """QoS 1 messages/s through mosquitto with its own C clients (100-byte payloads)."""
    sub = subprocess.Popen(
        ["mosquitto_sub", "-p", str(broker.port), "-t", "bench/ceiling", "-q", "1", "-C", str(n)],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    lines = ("x" * 99 + "\n") * n
    start = time.perf_counter()
    subprocess.run(
        ["mosquitto_pub", "-p", str(broker.port), "-t", "bench/ceiling", "-q", "1", "-l"],
        input=lines.encode(),
        check=True,
    )
    sub.wait(120)
    return n / (time.perf_counter() - start)


async def hook_everything(agent: AgentProc) -> None:
    async with grpc.aio.insecure_channel(agent.address) as channel:
        stub = agent_pb2_grpc.AgentStub(channel)
        for command in ("!ioin", "!ioout"):
            await stub.SetHook(agent_pb2.SetHookRequest(command=command), timeout=5)


async def subscribe(
    broker: Broker, host: str, seconds: float, warmup: float, latency: bool
) -> tuple[float, list[float]]:
    """Events/s received after ``warmup`` over ``seconds``; latencies (s) if asked."""
    count = 0
    lat: list[float] = []
    async with aiomqtt.Client("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5) as c:
        await c.subscribe(f"ioin/v1/{host}/events/#", qos=1)
        loop = asyncio.get_running_loop()
        start = loop.time()
        t0 = start + warmup
        try:
            async with asyncio.timeout(warmup + seconds):
                async for msg in c.messages:
                    assert isinstance(msg.payload, bytes)
                    batch = events_pb2.EventBatch.FromString(msg.payload)
                    if loop.time() < t0:
                        continue
                    count += batch_size(batch)
                    if latency:
                        wall = time.time_ns()
                        lat.extend((wall - ts) / 1e9 for ts in batch.columns.ts)
                        lat.extend((wall - e.ts) / 1e9 for e in batch.events)
        except TimeoutError:
            pass
    return count / seconds, lat


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run_agent(
    broker: Broker, work: Path, name: str, rate: float, latency: bool, mqtt: str = ""
) -> tuple[float, list[float], float]:
    """Run an agent (the given [mqtt] keys over the defaults), measure what a subscriber gets."""
    agent = start_agent(name, broker, work / name, sim_rate=rate, mqtt_extra=mqtt)
    try:
        await hook_everything(agent)
        got, lat = await asyncio.wait_for(subscribe(broker, name, 6.0, 2.0, latency), 60)
        return got, lat, rss_mib(agent.pid)
    finally:
        agent.stop()


def spool_costs(work: Path, batches: int = 2000, size: int = 60_000) -> tuple[float, float]:
    """Seconds per batch: SQLite put + ack, and a segment file append + fsync-free write."""
    payload = os.urandom(size)
    spool = Spool(work / "bench-spool.db", 1 << 34)
    start = time.perf_counter()
    for _ in range(batches):
        spool.ack(spool.put("t", payload, "ct", 1000), 1000, size)
    sqlite = (time.perf_counter() - start) / batches
    spool.close()
    start = time.perf_counter()
    with (work / "segment.log").open("ab") as seg:
        for _ in range(batches):
            seg.write(len(payload).to_bytes(4, "little"))
            seg.write(payload)
            seg.flush()
    segment = (time.perf_counter() - start) / batches
    return sqlite, segment


async def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    broker = start_broker(work / "mosquitto")
    try:
        ceiling = broker_ceiling(broker)
        flood, _, rss = await run_agent(broker, work, "bench-flood", 1_000_000, latency=False)
        fixed, lat, _ = await run_agent(broker, work, "bench-fixed", 50_000, latency=True)
    finally:
        broker.stop()
    sqlite, segment = spool_costs(work)
    p50 = statistics.median(lat) if lat else float("nan")
    p99 = statistics.quantiles(lat, n=100)[98] if len(lat) > 100 else float("nan")
    emit(
        [
            Row(
                BENCH,
                "broker ceiling (mosquitto C clients, QoS 1, 100 B)",
                ceiling,
                "msg/s",
                1.0,
                "itself",
            ),
            Row(
                BENCH,
                "end to end, sim flood, every access hooked",
                flood,
                "events/s",
                flood / ceiling,
                "broker msg/s",
                ">= 250k events/s",
                flood >= 250_000,
            ),
            Row(
                BENCH,
                "delivered at a fixed 50k events/s",
                fixed,
                "events/s",
                fixed / 50_000,
                "offered 50k/s",
            ),
            Row(BENCH, "latency p50 at 50k events/s", p50 * 1000, "ms"),
            Row(
                BENCH,
                "latency p99 at 50k events/s",
                p99 * 1000,
                "ms",
                None,
                "",
                "<= 200 ms",
                p99 <= 0.2,
            ),
            Row(BENCH, "agent RSS under the flood", rss, "MiB", None, "", "<= 100 MiB", rss <= 100),
            Row(
                BENCH,
                "spool: SQLite WAL put+ack per 60 KB batch",
                sqlite * 1e6,
                "us",
                sqlite / segment,
                "segment-file append",
            ),
        ]
    )


if __name__ == "__main__":
    asyncio.run(main())
