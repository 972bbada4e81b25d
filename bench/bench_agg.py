"""The aggregator (ioinagg), measured in one run with ratios to same-run baselines:

- ingest per instance on the embedded store (SQLite): decode, dedupe, roll up and commit a
  replay of EventBatch messages (no broker), against the raw protobuf decode of the same
  messages; target >= 2M events/s;
- two instances on one PostgreSQL against one (each takes half the hosts, as a shared
  subscription splits them); target >= 1.6x;
- a top-20 query over the last hour of 1,000 hosts x 10 ports: p99 against the same query on
  1-minute buckets; target p99 <= 100 ms;
- end to end: sim agents through mosquitto into ioinagg: counted / delivered, and the largest
  lag (now minus the newest event counted) sampled during the flood; target lag <= 2 s.

Messages are made like the sim backend's (its port weights, 2 VMs x 2 vCPUs, one hook, 2,000
events per batch, the agents' default batch_max), for 100 hosts.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.batch import Block, pack_batch
from agent.wire import events_pb2
from aggregator.ingest import Ingestor
from aggregator.query import Reader
from aggregator.store import open_store
from bench.common import Row, emit
from tests.aggregator.procs import AggProc

BENCH = "aggregator"
BATCH = 2000
PORTS = {0x3F8: 4.0, 0x3FD: 4.0, 0x70: 2.0, 0x71: 2.0, 0x60: 1.0, 0x64: 1.0}  # the sim's


def messages(hosts: int, per_host: int, seed: int = 1) -> list[tuple[str, bytes, str]]:
    rnd = random.Random(seed)
    ports = rnd.choices(list(PORTS), weights=list(PORTS.values()), k=BATCH)
    now = time.time_ns() - 60 * 10**9
    out = []
    for k in range(per_host):
        for h in range(hosts):
            first = 1 + k * BATCH
            ts = [now + (k * BATCH + i) * 50_000 for i in range(BATCH)]  # 20k events/s a host
            b = Block(
                "in-all", ts, ports, [rnd.randrange(256) for _ in range(8)] * (BATCH // 8),
                [i & 1 for i in range(BATCH)], ["vm0", "vm1"] * (BATCH // 2),
                [(i >> 1) & 1 for i in range(BATCH)], [0] * BATCH, [1] * BATCH, [2] * BATCH,
                list(range(first, first + BATCH)),
            )  # fmt: skip
            host = f"host-{h:03d}"
            out.append((host, pack_batch(host, "e1", b).SerializeToString(), ""))
    return out


def ingest_rate(store_url: str, msgs: list[tuple[str, bytes, str]], commit: int = 500) -> float:
    """Events/s through Ingestor.commit in group commits of ``commit`` messages (ioinagg's
    default ``ingest.commit_max``: what it commits while the broker keeps it busy)."""
    store = open_store(store_url, Path(tempfile.mkdtemp(prefix="agg-bench-")))
    ing = Ingestor(store)
    start = time.perf_counter()
    for i in range(0, len(msgs), commit):
        ing.commit(msgs[i : i + commit])
    elapsed = time.perf_counter() - start
    assert ing.stats.events == len(msgs) * BATCH, ing.stats
    store.close()
    return ing.stats.events / elapsed


def parse_rate(msgs: list[tuple[str, bytes, str]]) -> float:
    start = time.perf_counter()
    n = 0
    for _, payload, _ in msgs:
        b = events_pb2.EventBatch()
        b.ParseFromString(payload)
        n += len(b.columns.seq)
    return n / (time.perf_counter() - start)


def bench_ingest() -> list[Row]:
    msgs = messages(100, 10)  # 2M events
    ingest_rate("", msgs[:100])  # warm-up (imports, first allocations)
    base = statistics.median(parse_rate(msgs) for _ in range(3))
    rate = ingest_rate("", msgs)
    return [
        Row(BENCH, "raw protobuf decode (baseline)", base, "events/s", 1.0),
        Row(BENCH, "ingest, SQLite (decode+dedupe+rollup+commit)", rate, "events/s",
            rate / base, "protobuf decode", ">= 2M events/s", rate >= 2e6),
    ]  # fmt: skip


def bench_postgres() -> list[Row]:
    from tests.aggregator.procs import start_postgres

    pg = start_postgres()
    try:
        one = _pg_run(pg.url, 1)
        two = _pg_run(pg.url, 2)
    finally:
        pg.stop()
    return [
        Row(BENCH, "ingest, PostgreSQL, 1 instance (baseline)", one, "events/s", 1.0),
        Row(BENCH, f"ingest, PostgreSQL, 2 instances ({os.cpu_count()} CPUs here)", two,
            "events/s", two / one, "1 instance", ">= 1.6x", two / one >= 1.6),
    ]  # fmt: skip


def _pg_run(url: str, instances: int) -> float:
    """Events/s of ``instances`` worker processes, each ingesting its share of the hosts."""
    import psycopg

    db = f"bench_{instances}_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {db}")
    dburl = url.rsplit("/", 1)[0] + "/" + db
    open_store(dburl, Path("/tmp")).close()  # the schema, before the clock starts
    at = time.time() + 8.0  # every worker starts then, its messages made and its store open
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--pg-worker", dburl, str(i), str(instances), str(at)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(instances)
    ]
    results = [p.communicate(timeout=600)[0].split() for p in procs]
    events = sum(int(r[0]) for r in results)
    start, end = min(float(r[1]) for r in results), max(float(r[2]) for r in results)
    return events / (end - start)


def pg_worker(url: str, index: int, of: int, at: float) -> None:
    msgs = [m for m in messages(40, 10) if int(m[0][-3:]) % of == index]
    store = open_store(url, Path("/tmp"))
    ing = Ingestor(store)
    time.sleep(max(0.0, at - time.time()))
    start = time.time()
    for i in range(0, len(msgs), 500):
        ing.commit(msgs[i : i + 500])
    print(ing.stats.events, start, time.time())


def bench_query() -> list[Row]:
    store = open_store("", Path(tempfile.mkdtemp(prefix="agg-query-")))
    now = int(time.time())
    for lvl, width in (("t", 600), ("m", 60)):
        rows = [
            (f"host-{h:04d}", 0, 0, 0, 0x3F0 + p, "in-all", b, 1 + (h * 7 + p) % 97, 0, 0, "vm0")
            for b in range(now - 3600 - now % width, now + 1, width)
            for h in range(1000)
            for p in range(10)
        ]
        store.import_rows(lvl, rows)
    reader = Reader(store)

    def p99(fn: object) -> float:
        times = []
        for _ in range(30):
            t = time.perf_counter()
            fn()  # type: ignore[operator]
            times.append(time.perf_counter() - t)
        return sorted(times)[int(0.99 * len(times)) - 1] * 1000

    sql = (
        "SELECT host, port, SUM(events) AS ev FROM r_m WHERE bucket >= ? "
        "GROUP BY host, port ORDER BY ev DESC LIMIT 20"
    )
    base = p99(lambda: store.fetch(sql, [now - 3600]))
    top = p99(lambda: reader.query(3600, ["host", "port"], "", 20))
    return [
        Row(BENCH, "top-20 over 1 h, 1-min buckets p99 (baseline)", base, "ms", 1.0),
        Row(BENCH, "top-20 over 1 h, 1,000 hosts x 10 ports, p99", top, "ms", top / base,
            "1-min buckets", "<= 100 ms", top <= 100),
    ]  # fmt: skip


def bench_e2e() -> list[Row]:
    return asyncio.run(_e2e())


async def _e2e(seconds: float = 8.0, agents: int = 2, rate: float = 25_000.0) -> list[Row]:
    from tests.aggregator.conftest import published, remove_hook, set_hook
    from tests.aggregator.procs import start_aggregator
    from tests.harness import start_agent, start_broker

    tmp = Path(tempfile.mkdtemp(prefix="agg-e2e-"))
    broker = start_broker(tmp / "mosquitto")
    agg = start_aggregator(broker, tmp / "agg")
    started = [start_agent(f"e2e-{i}", broker, tmp / f"a{i}", sim_rate=rate) for i in range(agents)]
    try:
        ids = [await set_hook(a, "!ioin") for a in started]
        lags, t0 = [], time.monotonic()
        while time.monotonic() - t0 < seconds:
            await asyncio.sleep(0.5)
            lags.append(agg.metrics()["ioinagg_lag_seconds"])
        for a, hook_id in zip(started, ids, strict=True):
            await remove_hook(a, hook_id)
        delivered = sum([await published(a) for a in started])
        counted = await _counted(agg, delivered)
    finally:
        for a in started:
            a.stop()
        agg.stop()
        broker.stop()
    lag = max(lags[2:]) if len(lags) > 2 else max(lags)
    return [
        Row(BENCH, f"e2e: {agents} sim agents at {rate:,.0f}/s, delivered", delivered / seconds,
            "events/s", 1.0),
        Row(BENCH, "e2e: counted / delivered", counted / seconds, "events/s",
            counted / delivered, "delivered", "= 1.0", counted == delivered),
        Row(BENCH, "e2e: max lag during the flood", lag, "s", None, "", "<= 2 s", lag <= 2.0),
    ]  # fmt: skip


async def _counted(agg: AggProc, delivered: int, within: float = 60.0) -> float:
    """The aggregator's count once it reached ``delivered`` (or ``within`` s passed)."""
    deadline = time.monotonic() + within
    counted = agg.metrics()["ioinagg_events_total"]
    while counted < delivered and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        counted = agg.metrics()["ioinagg_events_total"]
    return counted


def main() -> None:
    if "--pg-worker" in sys.argv:
        i = sys.argv.index("--pg-worker")
        args = sys.argv[i + 1 : i + 5]
        pg_worker(args[0], int(args[1]), int(args[2]), float(args[3]))
        return
    rows = bench_ingest() + bench_query() + bench_postgres() + bench_e2e()
    emit(rows)


if __name__ == "__main__":
    main()
