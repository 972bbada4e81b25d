"""Decoding what agents publish on ``ioin/v1/<host>/events/<hook-id>``: EventBatch payloads.

A batch is protobuf (content type ``application/x-protobuf; proto=ioin.v1.EventBatch``, the MQTT 5
property) or JSON (``application/json``: ``{"host", "epoch", "events": [<event objects>]}``).
Either way each event comes out as its JSON object with exactly ``agent.events.JSON_KEYS``.
Anything else raises :class:`Junk` with the reason; the caller counts it and carries on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from agent.batch import batch_events, batch_size
from agent.decode_guard import (
    DEFAULT_LIMITS,
    EventRefused,
    Limits,
    check_event,
    check_size,
    load_json,
    printable,
)
from agent.eventline import event_line
from agent.events import to_json
from agent.topics import CT_JSON, CT_PROTOBUF
from agent.wire import events_pb2

__all__ = ["JSON_TYPE", "PROTO_TYPE", "Batch", "Junk", "decode_batch", "event_line"]

PROTO_TYPE = CT_PROTOBUF
JSON_TYPE = CT_JSON


class Junk(ValueError):
    """A payload that is not an EventBatch from the host its topic names."""


@dataclass(frozen=True, slots=True)
class Batch:
    """A decoded batch: the publishing host, its epoch, its events as JSON objects."""

    host: str
    epoch: str
    events: list[dict[str, Any]]


def decode_batch(
    payload: bytes, content_type: str | None, topic_host: str, limits: Limits = DEFAULT_LIMITS
) -> Batch:
    """Decode one payload published on ``topic_host``'s events topic, or raise :class:`Junk`.

    Every event is checked by :mod:`agent.decode_guard` (sizes, depth, ranges), so what comes
    out is safe to print, to serialize and to count.
    """
    kind = (content_type or "").split(";")[0].strip().lower()
    try:
        if kind == "application/json" or (not kind and payload[:1] == b"{"):
            batch = _from_json(payload, limits)
        elif kind in ("application/x-protobuf", "application/protobuf", ""):
            batch = _from_proto(payload, limits)
        else:
            raise Junk(f"unexpected content type '{printable(content_type or '', 64)}'")
    except EventRefused as e:
        raise Junk(str(e)) from None
    if batch.host != topic_host:
        raise Junk(f"batch from host '{batch.host}' on the topic of '{topic_host}'")
    return batch


def _from_proto(payload: bytes, limits: Limits) -> Batch:
    check_size(payload, limits)
    msg = events_pb2.EventBatch()
    try:
        msg.ParseFromString(payload)
        _count(batch_size(msg), limits)
        host, epoch = _header(msg.host, msg.epoch, limits)
        events = [to_json(ev, host, epoch) for ev in batch_events(msg)]
    except (DecodeError, ValueError) as e:  # ValueError: a direction or stage out of range
        raise Junk(f"not an EventBatch: {e}") from None
    return Batch(host, epoch, [check_event(ev, host, epoch, limits) for ev in events])


def _from_json(payload: bytes, limits: Limits) -> Batch:
    doc = load_json(payload, limits)
    if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
        raise Junk("JSON batch without an 'events' list")
    host, epoch = doc.get("host"), doc.get("epoch")
    if not isinstance(host, str) or not isinstance(epoch, str):
        raise Junk("JSON batch without string 'host' and 'epoch'")
    host, epoch = _header(host, epoch, limits)
    _count(len(doc["events"]), limits)
    return Batch(host, epoch, [check_event(ev, host, epoch, limits) for ev in doc["events"]])


def _header(host: str, epoch: str, limits: Limits) -> tuple[str, str]:
    """The batch's host and epoch, checked as an event's are."""
    check_event({"seq": 1, "ts": 0, "hook_id": "x", "dir": "in", "port": 0}, host, epoch, limits)
    return host, epoch


def _count(n: int, limits: Limits) -> None:
    if n > limits.max_events:
        raise EventRefused("events", f"has {n} events, over {limits.max_events}")
