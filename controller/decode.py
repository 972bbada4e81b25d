"""Decoding what agents publish on ``ioin/v1/<host>/events/<hook-id>``: EventBatch payloads.

A batch is protobuf (content type ``application/x-protobuf; proto=ioin.v1.EventBatch``, the MQTT 5
property) or JSON (``application/json``: ``{"host", "epoch", "events": [<event objects>]}``).
Either way each event comes out as its JSON object with exactly ``agent.events.JSON_KEYS``.
Anything else raises :class:`Junk` with the reason; the caller counts it and carries on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from agent.batch import batch_events
from agent.eventline import event_line
from agent.events import JSON_KEYS, to_json
from agent.topics import CT_JSON, CT_PROTOBUF
from agent.wire import events_pb2

__all__ = ["JSON_TYPE", "PROTO_TYPE", "Batch", "Junk", "decode_batch", "event_line"]

PROTO_TYPE = CT_PROTOBUF
JSON_TYPE = CT_JSON

# Keys a JSON event must carry; the others default as `to_json` would give them.
_REQUIRED = ("seq", "ts", "hook_id", "dir", "port")
# The type of every key that may be present (None allowed where to_json gives null).
_TYPES: Mapping[str, tuple[type, ...]] = {
    **dict.fromkeys(("seq", "ts", "port", "size", "count", "value", "vm", "vcpu", "cpu"), (int,)),
    **dict.fromkeys(("host", "epoch", "hook_id", "dir", "vm_name", "stage"), (str,)),
    **dict.fromkeys(("string", "rep", "skipped"), (bool,)),
    **dict.fromkeys(("rip", "value_set"), (int, type(None))),
    "break_id": (str, type(None)),
    "output": (str, type(None)),  # what the hook's script printed
    "data": (list,),
    "regs": (dict,),
}


class Junk(ValueError):
    """A payload that is not an EventBatch from the host its topic names."""


@dataclass(frozen=True, slots=True)
class Batch:
    """A decoded batch: the publishing host, its epoch, its events as JSON objects."""

    host: str
    epoch: str
    events: list[dict[str, Any]]


def decode_batch(payload: bytes, content_type: str | None, topic_host: str) -> Batch:
    """Decode one payload published on ``topic_host``'s events topic, or raise :class:`Junk`."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind == "application/json" or (not kind and payload[:1] == b"{"):
        batch = _from_json(payload)
    elif kind in ("application/x-protobuf", "application/protobuf", ""):
        batch = _from_proto(payload)
    else:
        raise Junk(f"unexpected content type '{content_type}'")
    if batch.host != topic_host:
        raise Junk(f"batch from host '{batch.host}' on the topic of '{topic_host}'")
    return batch


def _from_proto(payload: bytes) -> Batch:
    msg = events_pb2.EventBatch()
    try:
        msg.ParseFromString(payload)
        events = [to_json(ev, msg.host, msg.epoch) for ev in batch_events(msg)]
    except (DecodeError, ValueError) as e:  # ValueError: a direction or stage out of range
        raise Junk(f"not an EventBatch: {e}") from None
    return Batch(msg.host, msg.epoch, events)


def _from_json(payload: bytes) -> Batch:
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Junk(f"not JSON: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
        raise Junk("JSON batch without an 'events' list")
    host, epoch = doc.get("host"), doc.get("epoch")
    if not isinstance(host, str) or not isinstance(epoch, str):
        raise Junk("JSON batch without string 'host' and 'epoch'")
    return Batch(host, epoch, [_json_event(ev, host, epoch) for ev in doc["events"]])


def _json_event(ev: Any, host: str, epoch: str) -> dict[str, Any]:
    if not isinstance(ev, dict):
        raise Junk("JSON event is not an object")
    missing = [k for k in _REQUIRED if k not in ev]
    if missing:
        raise Junk(f"JSON event without '{missing[0]}'")
    for key, kinds in _TYPES.items():
        value = ev.get(key)
        if key in ev and (not isinstance(value, kinds) or _int_bool(value, kinds)):
            raise Junk(f"JSON event: '{key}' is {type(value).__name__}")
    if ev["dir"] not in ("in", "out"):
        raise Junk(f"JSON event: dir '{ev['dir']}' is not in/out")
    defaults = {"host": host, "epoch": epoch, "size": 1, "count": 1, "data": [], "regs": {}}
    return {k: ev.get(k, defaults.get(k)) for k in JSON_KEYS}


def _int_bool(value: object, kinds: tuple[type, ...]) -> bool:
    """JSON true/false where a number belongs (Python's bool is an int)."""
    return isinstance(value, bool) and bool not in kinds
