"""Fuzz target: the event decoders of ``ioinctl watch`` (and of any consumer using
``agent.decode_guard``). Whatever arrives on an events topic decodes to checked events or is
refused as Junk; what decodes can always be printed in both output modes, with no raw control
character reaching the terminal."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agent.events import JSON_KEYS, Event, to_json, to_proto
from agent.model import Direction
from agent.wire import events_pb2
from controller.decode import JSON_TYPE, PROTO_TYPE, Junk, decode_batch, event_line
from tests.fuzz.budget import run

GOOD = [Event("uart", 1_700_000_000_000_000_000, Direction.IN, 0x3F8, seq=1, value=0x41)]
GOOD.append(Event("k", 5, Direction.OUT, 0x70, seq=2, rip=0x1000, regs={"rax": 1}, data=(1, 2)))


def proto_seed() -> bytes:
    msg = events_pb2.EventBatch(host="h1", epoch="e")
    for ev in GOOD:
        to_proto(ev, msg.events.add())
    return msg.SerializeToString()


def json_seed() -> bytes:
    events = [to_json(e, "h1", "e") for e in GOOD]
    return json.dumps({"host": "h1", "epoch": "e", "events": events}).encode()


SEEDS = [proto_seed(), json_seed()]
CTYPES = st.sampled_from([PROTO_TYPE, JSON_TYPE, None, "", "text/plain", "application/json;x"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid batch with byte-level edits: flips, inserts, deletes, a cut."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(0, len(data)))
        match draw(st.sampled_from(["flip", "insert", "delete", "cut"])):
            case "flip" if pos < len(data):
                data[pos] ^= 1 << draw(st.integers(0, 7))
            case "insert":
                data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
            case "delete":
                del data[pos : pos + draw(st.integers(1, 8))]
            case "cut":
                del data[pos:]
    return bytes(data)


@st.composite
def json_fields(draw: st.DrawFn) -> bytes:
    """A JSON batch whose events have arbitrary values in arbitrary known keys."""
    events = []
    for ev in GOOD:
        obj: dict[str, Any] = to_json(ev, "h1", "e")
        for key in draw(st.lists(st.sampled_from(JSON_KEYS), max_size=4)):
            obj[key] = draw(JSON_VALUES)
        events.append(obj)
    host = draw(st.sampled_from(["h1", "h1\x1b[2J", "H1"]))
    return json.dumps(
        {"host": host, "epoch": draw(st.text(max_size=12)), "events": events}
    ).encode()


@st.composite
def proto_fields(draw: st.DrawFn) -> bytes:
    """A protobuf batch with arbitrary wire-typed values (any text in the string fields)."""
    msg = events_pb2.EventBatch(host="h1", epoch=draw(st.text(max_size=12)))
    for _ in range(draw(st.integers(0, 3))):
        msg.events.add(
            seq=draw(st.integers(0, 2**64 - 1)),
            ts=draw(st.integers(0, 2**64 - 1)),
            hook_id=draw(st.text(max_size=12)),
            dir=draw(st.integers(0, 3)),
            port=draw(st.integers(0, 2**32 - 1)),
            size=draw(st.integers(0, 8)),
            vm_name=draw(st.text(max_size=12)),
            stage=draw(st.integers(0, 4)),
            break_id=draw(st.text(max_size=8)),
        )
    return msg.SerializeToString()


PAYLOADS = st.one_of(st.binary(max_size=2048), mutated(), json_fields(), proto_fields())


@given(PAYLOADS, CTYPES)
def decode_target(payload: bytes, content_type: str | None) -> None:
    try:
        batch = decode_batch(payload, content_type, "h1")
    except Junk:
        return
    for ev in batch.events:
        assert tuple(ev) == JSON_KEYS
        json.dumps(ev)
        line = event_line(ev)
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in line), line


def test_fuzz_the_event_decoders() -> None:
    assert run(decode_target) >= 1
