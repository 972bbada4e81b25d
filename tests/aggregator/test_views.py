"""Reading the aggregator with real parts: ``ioinctl query`` / ``top`` against a real ioinagg,
the Hosts RPC (births, wills, drops), and alert rules (published, counted, shown, reloaded)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import pytest

from agent.batch import Block, pack_batch
from controller import aggclient
from controller.cli import main as ioinctl
from tests.aggregator.conftest import settle
from tests.aggregator.procs import AggProc, wait_for
from tests.aggregator.test_bad_input import PB, publish
from tests.harness import Broker

pytestmark = pytest.mark.slow


def batch(host: str, first: int, ports: list[int], vm: int = 1, out: bool = False) -> bytes:
    n, now = len(ports), time.time_ns()
    flags = [(2 << 1) | int(out)] * n
    b = Block(
        "in-all", [now + i for i in range(n)], ports, [0x41] * n, [vm] * n, [f"vm{vm}"] * n,
        [0] * n, [0] * n, [1] * n, flags, list(range(first, first + n)),
    )  # fmt: skip
    return pack_batch(host, "e1", b).SerializeToString()


SCAN = [0x60, 0x61, 0x62, 0x63, 0x64, 0x70]  # six distinct ports from one VM


def events_topic(host: str) -> str:
    return f"ioin/v1/{host}/events/in-all"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = ioinctl(argv)
    out, err = capsys.readouterr()
    return code, out, err


async def test_query_groups_filters_and_formats(
    aggregator_factory: Callable[..., AggProc],
    mosquitto: Broker,
    capsys: pytest.CaptureFixture[str],
) -> None:
    agg = aggregator_factory()
    t = events_topic("qv-a")
    items = [
        (t, batch("qv-a", 1, [0x3F8] * 30 + [0x3F2] * 5), PB),
        (events_topic("qv-b"), batch("qv-b", 1, [0x3F8] * 7, vm=2), PB),
    ]
    await publish(mosquitto.port, items)
    await settle(agg, {"qv-a": 35, "qv-b": 7})
    base = ["--aggregator", agg.address, "--insecure"]
    code, out, _ = await asyncio.to_thread(
        run, ["query", "--since", "1h", "--by", "port,host", "-o", "json", *base], capsys
    )
    assert code == 0
    doc = json.loads(out)
    assert doc[0]["values"] == [{"value": 0x41, "events": 30}]  # the most frequent values
    rows = [{k: r[k] for k in ("port", "host", "events")} for r in doc]
    assert rows == [
        {"port": "0x03f8", "host": "qv-a", "events": 30},
        {"port": "0x03f8", "host": "qv-b", "events": 7},
        {"port": "0x03f2", "host": "qv-a", "events": 5},
    ]
    code, out, _ = await asyncio.to_thread(
        run, ["query", "--by", "host,vm", "--where", "port=0x3f0-0x3f7", "-o", "csv", *base],
        capsys,
    )  # fmt: skip
    assert (code, out) == (0, "host,vm,events\nqv-a,1,5\n")
    code, _, err = await asyncio.to_thread(run, ["query", "--where", "colour=blue", *base], capsys)
    assert code != 0
    assert "colour=blue" in err


async def test_top_once_shows_the_hottest_with_sparklines(
    aggregator_factory: Callable[..., AggProc],
    mosquitto: Broker,
    capsys: pytest.CaptureFixture[str],
) -> None:
    agg = aggregator_factory()
    await publish(mosquitto.port, [(events_topic("top-a"), batch("top-a", 1, [0x70] * 50), PB)])
    await publish(mosquitto.port, [(events_topic("top-b"), batch("top-b", 1, [0x60] * 5), PB)])
    await settle(agg, {"top-a": 50, "top-b": 5})
    base = ["--aggregator", agg.address, "--insecure"]
    code, out, _ = await asyncio.to_thread(run, ["top", "--once", "--json", *base], capsys)
    assert code == 0
    snap = json.loads(out)
    mine = [r for r in snap["rows"] if r["host"] in ("top-a", "top-b")]
    assert [(r["host"], r["port"], r["events"]) for r in mine] == [
        ("top-a", 0x70, 50),
        ("top-b", 0x60, 5),
    ]
    assert sum(mine[0]["spark"]) == 50
    assert mine[0]["rate"] == pytest.approx(5.0)  # 50 events over the 10 s window
    code, out, _ = await asyncio.to_thread(run, ["top", "--once", "--host", "top-b", *base], capsys)
    assert code == 0
    assert "top-b" in out
    assert "top-a" not in out
    assert "0x0060" in out


async def test_hosts_reports_births_drops_and_gaps(
    aggregator_factory: Callable[..., AggProc], mosquitto: Broker
) -> None:
    agg = aggregator_factory()
    birth = {"host": "hs-a", "online": True, "epoch": "e1", "labels": {"env": "prod"},
             "address": "10.0.0.5:50051"}  # fmt: skip
    drops = {"host": "hs-a", "kind": "drops", "stage": "spool", "events": 12}
    items = [
        ("ioin/v1/hs-a/status", json.dumps(birth).encode(), ""),
        ("ioin/v1/hs-a/notices", json.dumps(drops).encode(), ""),
        (events_topic("hs-a"), batch("hs-a", 1, [0x70] * 10), PB),
        (events_topic("hs-a"), batch("hs-a", 21, [0x70] * 10), PB),  # 11..20 never come
    ]
    await publish(mosquitto.port, items)
    await settle(agg, {"hs-a": 20})
    target = aggclient.resolve_target(agg.address, None, ca=None, cert=None, key=None,
                                      insecure=True)  # fmt: skip
    await asyncio.sleep(5.5)  # the gap grace period
    rows = await aggclient.enrich_hosts(target, [{"host": "hs-a"}, {"host": "hs-none"}])
    assert rows[0]["gaps"] == 10
    assert rows[0]["drops"] == 12
    assert rows[0]["last_event_ts"] > 0
    assert rows[1] == {"host": "hs-none", "gaps": 0, "drops": 0, "rate": 0.0, "last_event_ts": 0}
    stats = await aggclient.host_stats(target)
    assert stats["hs-a"].online
    await publish(mosquitto.port, [("ioin/v1/hs-a/status", b'{"host":"hs-a","online":false}', "")])
    await asyncio.sleep(1.0)
    assert not (await aggclient.host_stats(target))["hs-a"].online


async def test_alert_rules_fire_publish_count_show_and_reload(
    aggregator_factory: Callable[..., AggProc],
    mosquitto: Broker,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rules = tmp_path / "alerts.toml"
    rules.write_text(
        '[[rule]]\nname = "floppy"\nports = ["0x3f0-0x3f7"]\n\n'
        '[[rule]]\nname = "scan"\ndir = "in"\ndistinct_ports = 6\nwindow_s = 10\n'
    )
    agg = aggregator_factory(extra=["--alerts", str(rules)])
    got: list[tuple[str, dict[str, object]]] = []
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as sub:
        await sub.subscribe("ioin/v1/alerts/#", qos=1)

        async def collect() -> None:
            async for m in sub.messages:
                got.append((m.topic.value, json.loads(m.payload)))

        task = asyncio.create_task(collect())
        await publish(mosquitto.port, [
            (events_topic("al-a"), batch("al-a", 1, [0x3F5] * 3), PB),
            (events_topic("al-b"), batch("al-b", 1, SCAN, vm=3), PB),
            (events_topic("al-c"), batch("al-c", 1, [0x60, 0x61], vm=3), PB),
        ])  # fmt: skip
        await settle(agg, {"al-a": 3, "al-b": 6, "al-c": 2})
        await asyncio.sleep(1.0)
        task.cancel()
    topics = sorted((t, d["host"]) for t, d in got)
    assert topics == [("ioin/v1/alerts/floppy", "al-a"), ("ioin/v1/alerts/scan", "al-b")]
    m = agg.metrics()
    assert m['ioinagg_alerts_total{rule="floppy"}'] == 1
    assert m['ioinagg_alerts_total{rule="scan"}'] == 1
    base = ["--aggregator", agg.address, "--insecure"]
    code, out, _ = await asyncio.to_thread(run, ["top", "--once", *base], capsys)
    assert code == 0
    assert "floppy" in out
    rules.write_text('[[rule]]\nname = "rtc"\nports = [0x70]\nhosts = ["al-d"]\n')
    await asyncio.sleep(3.0)  # polled every 2 s
    await publish(mosquitto.port, [(events_topic("al-d"), batch("al-d", 1, [0x70]), PB)])
    wait_for(lambda: agg.metrics().get('ioinagg_alerts_total{rule="rtc"}', 0) == 1)


async def test_top_streams_snapshots_and_refuses_a_bad_sort_key(
    aggregator_factory: Callable[..., AggProc], mosquitto: Broker
) -> None:
    import grpc

    from agent.wire import aggregator_pb2, aggregator_pb2_grpc

    agg = aggregator_factory()
    await publish(mosquitto.port, [(events_topic("st-a"), batch("st-a", 1, [0x64] * 20), PB)])
    await settle(agg, {"st-a": 20})
    async with grpc.aio.insecure_channel(agg.address) as ch:
        stub = aggregator_pb2_grpc.AggregatorStub(ch)
        request = aggregator_pb2.TopRequest(interval_s=0.2, sort="events", hosts=["st-a"])
        snaps = []
        async for snap in stub.Top(request, timeout=10):
            snaps.append(snap)
            if len(snaps) == 3:
                break
        assert [s.ts for s in snaps] == sorted({s.ts for s in snaps})
        assert all(s.rows[0].host == "st-a" for s in snaps)
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            async for _ in stub.Top(aggregator_pb2.TopRequest(sort="colour"), timeout=10):
                pass
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'colour'" in (exc.value.details() or "")
