"""Watch decoding: protobuf and JSON batches, filters, the tally, and tolerance of junk."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.events import JSON_KEYS, Event, to_json, to_proto
from agent.model import Direction
from agent.wire import events_pb2
from controller.decode import JSON_TYPE, PROTO_TYPE, Junk, decode_batch, event_line
from controller.render import Output
from controller.watch import WatchConfig, Watcher, topics

TOPIC = "ioin/v1/h1/events/uart"


def events() -> list[Event]:
    return [
        Event(
            hook_id="uart",
            ts=1_700_000_000_000_000_000,
            dir=Direction.IN,
            port=0x3F8,
            seq=1,
            value=0x41,
        ),
        Event(
            hook_id="uart",
            ts=1_700_000_000_000_000_001,
            dir=Direction.OUT,
            port=0x70,
            seq=2,
            rip=0x1000,
        ),
    ]


def proto_batch(host: str = "h1") -> bytes:
    batch = events_pb2.EventBatch(host=host, epoch="e1")
    for ev in events():
        to_proto(ev, batch.events.add())
    return batch.SerializeToString()


def json_batch(host: str = "h1") -> bytes:
    return json.dumps(
        {"host": host, "epoch": "e1", "events": [to_json(ev, host, "e1") for ev in events()]}
    ).encode()


def watcher(**kwargs: Any) -> tuple[Watcher, list[str]]:
    lines: list[str] = []
    return Watcher(WatchConfig(**kwargs), lines.append), lines


@pytest.mark.parametrize(
    ("payload", "ctype"), [(proto_batch(), PROTO_TYPE), (json_batch(), JSON_TYPE)]
)
def test_both_encodings_decode_to_the_same_json_objects(payload: bytes, ctype: str) -> None:
    batch = decode_batch(payload, ctype, "h1")
    assert (batch.host, batch.epoch) == ("h1", "e1")
    assert batch.events == [to_json(ev, "h1", "e1") for ev in events()]
    assert all(tuple(ev) == JSON_KEYS for ev in batch.events)


def test_json_output_is_one_object_per_line_with_exactly_the_event_keys() -> None:
    w, lines = watcher(output=Output.JSON)
    w.handle(TOPIC, proto_batch(), PROTO_TYPE)
    w.handle(TOPIC, json_batch(), JSON_TYPE)
    assert len(lines) == 4
    for line in lines:
        assert list(json.loads(line)) == list(JSON_KEYS)


def test_human_lines_and_the_tally() -> None:
    w, lines = watcher()
    w.handle(TOPIC, proto_batch(), PROTO_TYPE)
    assert lines[0] == "22:13:20.000000 h1 #1 uart IN  port 0x03f8 size 1 value 0x41 vm 0 vcpu 0"
    assert lines[1].endswith("OUT port 0x0070 size 1 value 0x0 vm 0 vcpu 0 rip 0x1000")
    tally = w.tally["h1"]
    assert (tally.events, tally.hooks, tally.ports) == (2, {"uart"}, {0x3F8, 0x70})


def test_port_and_hook_filters() -> None:
    w, lines = watcher(port=0x70)
    w.handle(TOPIC, proto_batch(), PROTO_TYPE)
    assert len(lines) == 1
    assert "port 0x0070" in lines[0]
    w, lines = watcher(hook="other")
    w.handle(TOPIC, proto_batch(), PROTO_TYPE)
    assert lines == []


def test_missing_content_type_is_sniffed() -> None:
    assert len(decode_batch(json_batch(), None, "h1").events) == 2
    assert len(decode_batch(proto_batch(), None, "h1").events) == 2


@pytest.mark.parametrize(
    ("payload", "ctype", "reason"),
    [
        (b"\xff\xfe\x00garbage", PROTO_TYPE, "not an EventBatch"),
        (b"{not json", JSON_TYPE, "not JSON"),
        (b"[]", JSON_TYPE, "without an 'events' list"),
        (b'{"host": "h1", "epoch": 1, "events": []}', JSON_TYPE, "string 'host' and 'epoch'"),
        (b'{"host": "h1", "epoch": "e", "events": [1]}', JSON_TYPE, "not an object"),
        (b'{"host": "h1", "epoch": "e", "events": [{"seq": 1}]}', JSON_TYPE, "'ts' is missing"),
        (json_batch().replace(b'"port": 1016', b'"port": "x"'), JSON_TYPE, "'port' is str"),
        (json_batch().replace(b'"seq": 1', b'"seq": true'), JSON_TYPE, "'seq' is bool"),
        (json_batch().replace(b'"dir": "in"', b'"dir": "up"'), JSON_TYPE, "'dir' is not one of"),
        (proto_batch(), "text/plain", "unexpected content type"),
        (proto_batch("h2"), PROTO_TYPE, "batch from host 'h2' on the topic of 'h1'"),
        (json_batch("h2"), JSON_TYPE, "batch from host 'h2'"),
    ],
)
def test_junk_is_refused_with_a_reason(payload: bytes, ctype: str, reason: str) -> None:
    with pytest.raises(Junk, match=reason):
        decode_batch(payload, ctype, "h1")


def test_junk_never_stops_the_watch_and_is_reported_once_per_n(
    capsys: pytest.CaptureFixture[str],
) -> None:
    w, lines = watcher(junk_every=10)
    for i in range(25):
        w.handle(TOPIC, b"\xff" * i, PROTO_TYPE if i % 2 else JSON_TYPE)
    w.handle("other/topic", b"", None)
    w.handle("ioin/v1/h1/console/1", b"hello", None)
    w.handle(TOPIC, proto_batch(), PROTO_TYPE)
    assert w.junk == 27
    assert len(lines) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3  # the first, the 10th, the 20th
    assert err[0].startswith(f"ioinctl: ignored a malformed payload on {TOPIC}: ")
    assert err[-1].endswith("(20 so far)")


def test_notices_are_printed_and_kept_off_the_json_stream(
    capsys: pytest.CaptureFixture[str],
) -> None:
    w, lines = watcher()
    w.handle("ioin/v1/h1/notices", b'{"dropped": 3}')
    assert lines == ['notice h1: {"dropped": 3}']
    w, lines = watcher(output=Output.JSON)
    w.handle("ioin/v1/h1/breaks", b"b-1")
    assert lines == []
    assert capsys.readouterr().err == "ioinctl: break h1: b-1\n"


def test_topics() -> None:
    assert topics(WatchConfig()) == ["ioin/v1/+/events/#"]
    assert topics(WatchConfig(host="h1", hook="uart", notices=True, breaks=True)) == [
        "ioin/v1/h1/events/uart",
        "ioin/v1/h1/notices",
        "ioin/v1/h1/breaks",
    ]


def test_event_line_shows_actions() -> None:
    ev = to_json(
        Event(
            hook_id="k", ts=0, dir=Direction.IN, port=0x60, value_set=7, skipped=True, break_id="b9"
        ),
        "h",
        "e",
    )
    assert event_line(ev).endswith("set 0x7 skipped break b9")
