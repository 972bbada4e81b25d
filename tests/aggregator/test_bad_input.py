"""Injected duplicates and foreign payloads, through a real broker into a real ioinagg: each is
counted by kind and skipped; nothing is counted that should not be; the process carries on."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.batch import Block, pack_batch
from agent.events import Event, to_json
from agent.model import Direction
from tests.aggregator.conftest import counted, settle
from tests.aggregator.procs import AggProc, wait_for
from tests.harness import Broker

pytestmark = pytest.mark.slow


def block(n: int, first_seq: int, ts: int, port: int = 0x3F8) -> Block:
    return Block(
        "in-3f8", [ts + i for i in range(n)], [port] * n, [i % 7 for i in range(n)], [1] * n,
        ["vm1"] * n, [0] * n, [0] * n, [1] * n, [2] * n, list(range(first_seq, first_seq + n)),
    )  # fmt: skip


def props(content_type: str) -> Properties:
    p = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    p.ContentType = content_type
    return p


async def publish(port: int, items: list[tuple[str, bytes, str]]) -> None:
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5) as c:
        for topic, payload, ctype in items:
            await c.publish(topic, payload, qos=1, properties=props(ctype) if ctype else None)


PB = "application/x-protobuf; proto=ioin.v1.EventBatch"
DAY = 86400 * 10**9
DAY = 86400 * 10**9


async def test_duplicate_batches_are_dropped(
    aggregator_factory: Callable[..., AggProc], mosquitto: Broker
) -> None:
    agg = aggregator_factory()
    now = time.time_ns()
    one = pack_batch("dup-a", "e1", block(500, 1, now)).SerializeToString()
    two = pack_batch("dup-a", "e1", block(300, 501, now)).SerializeToString()
    topic = "ioin/v1/dup-a/events/in-3f8"
    await publish(mosquitto.port, [(topic, one, PB), (topic, one, PB), (topic, two, PB)])
    await publish(mosquitto.port, [(topic, two, PB), (topic, one, PB)])  # a later replay
    assert await settle(agg, {"dup-a": 800}) == {"dup-a": 800}
    m = agg.metrics()
    assert m["ioinagg_duplicates_total"] == 500 + 300 + 500
    assert m["ioinagg_events_total"] == 800


async def test_foreign_payloads_are_counted_and_skipped(
    aggregator_factory: Callable[..., AggProc], mosquitto: Broker
) -> None:
    agg = aggregator_factory()
    now = time.time_ns()
    good = pack_batch("bad-a", "e1", block(10, 1, now)).SerializeToString()
    ev = Event("in-3f8", now, Direction.OUT, 0x3F0, seq=11, vm=2, vm_name="vm2")
    good_json = json.dumps({"host": "bad-a", "epoch": "e1", "events": [to_json(ev, "bad-a", "e1")]})
    t = "ioin/v1/bad-a/events/in-3f8"
    bad_drops = {"host": "bad-a", "kind": "drops", "events": -4}
    bad_drops = {"host": "bad-a", "kind": "drops", "events": -4}
    items = [
        (t, b"\xff\xfe\x00 not protobuf", PB),
        (t, b'{"host": "bad-a", "epoch": "e1", "events": [{"seq": "x"}]}', "application/json"),
        (t, pack_batch("bad-b", "e1", block(5, 1, now)).SerializeToString(), PB),
        (t, pack_batch("bad-a", "e2", block(5, 1, now + 3600 * 10**9)).SerializeToString(), PB),
        (t, pack_batch("bad-a", "e3", block(5, 1, now - 30 * DAY)).SerializeToString(), PB),
        (t, good, "text/plain"),
        (t, pack_batch("bad-a", "e4", block(5, 1, now, port=0x3F8)).SerializeToString()[:-3], PB),
        ("ioin/v1/bad-a/status", b"not json", ""),
        ("ioin/v1/bad-a/notices", json.dumps(bad_drops).encode(), ""),
        (t, good, PB),
        (t, good_json.encode(), "application/json"),
    ]  # fmt: skip
    await publish(mosquitto.port, items)
    assert await settle(agg, {"bad-a": 11}) == {"bad-a": 11}
    wait_for(lambda: agg.metrics().get('ioinagg_skipped_total{kind="malformed"}', 0) >= 5)
    m = agg.metrics()
    skipped = {k: v for k, v in m.items() if k.startswith("ioinagg_skipped_total")}
    assert skipped == {
        'ioinagg_skipped_total{kind="content-type"}': 1,
        'ioinagg_skipped_total{kind="foreign-host"}': 1,
        'ioinagg_skipped_total{kind="future"}': 1,
        'ioinagg_skipped_total{kind="malformed"}': 5,
        'ioinagg_skipped_total{kind="past"}': 1,
    }
    assert agg.proc is not None
    assert agg.proc.poll() is None
    assert "payload-skipped" in agg.log
    await asyncio.sleep(0.5)
    assert await counted(agg) == {"bad-a": 11}
