"""From an MQTT message to checked columns: protobuf or JSON, host against topic, time window.

Every refusal is a :class:`Junk` naming what is wrong, with a ``kind`` the caller counts:
``malformed``, ``foreign-host``, ``future``, ``past``, ``content-type``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.batch import F_OUT
from agent.decode_guard import EventRefused, Limits, load_json
from agent.model import check_id
from aggregator.errors import Junk
from aggregator.wire import MAX_EVENTS, MAX_PAYLOAD, Columns, read_batch

__all__ = ["Window", "decode"]

_JSON_INT = ("seq", "ts", "port", "value", "vm", "vcpu")
# Size and nesting are measured before JSON is parsed (deep nesting raised RecursionError).
_LIMITS = Limits(max_payload=MAX_PAYLOAD, max_events=MAX_EVENTS)


@dataclass(frozen=True, slots=True)
class Window:
    """Events are counted only within ``now - max_past_s .. now + max_future_s``."""

    max_past_s: float = 7 * 86400.0  # an agent's spool replays a week-long outage at most
    max_future_s: float = 300.0  # clocks off by more than 5 min are someone else's problem


def decode(
    payload: bytes, content_type: str, topic_host: str, now_ns: int, window: Window
) -> Columns:
    """Decode and check one events payload published on ``topic_host``'s topic."""
    kind = content_type.split(";")[0].strip().lower()
    parse: Callable[[bytes], Columns]
    if kind == "application/json" or (not kind and payload[:1] == b"{"):
        parse = _from_json
    elif kind in ("application/x-protobuf", "application/protobuf", ""):
        parse = read_batch
    else:
        raise Junk("content-type", f"content type '{content_type}' is not an EventBatch")
    cols = parse(payload)
    if cols.host != topic_host:
        raise Junk("foreign-host", f"batch from host '{cols.host}' on the topic of '{topic_host}'")
    try:
        check_id("host id", cols.host)
        for h in cols.hook_ids:
            check_id("hook id", h)
    except ValueError as exc:
        raise Junk("malformed", str(exc)) from None
    if not cols.epoch or len(cols.epoch) > 64:
        raise Junk("malformed", f"epoch '{cols.epoch[:70]}' is empty or longer than 64")
    if len(cols):
        _check_time(cols, now_ns, window)
    return cols


def _check_time(cols: Columns, now_ns: int, window: Window) -> None:
    lo, hi = int(cols.ts.min()), int(cols.ts.max())
    if hi > now_ns + window.max_future_s * 1e9:
        raise Junk("future", f"event at ts {hi} is {(hi - now_ns) / 1e9:.0f} s in the future")
    if lo < now_ns - window.max_past_s * 1e9:
        raise Junk("past", f"event at ts {lo} is {(now_ns - lo) / 1e9:.0f} s old")


def _from_json(payload: bytes) -> Columns:
    """A JSON batch (``{"host", "epoch", "events": [...]}``, agent.events.to_json's keys)."""
    try:
        doc = load_json(payload, _LIMITS)
    except EventRefused as exc:
        raise Junk("malformed", str(exc)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
        raise Junk("malformed", "JSON batch without an 'events' list")
    host, epoch, events = doc.get("host"), doc.get("epoch"), doc["events"]
    if not isinstance(host, str) or not isinstance(epoch, str):
        raise Junk("malformed", "JSON batch without string 'host' and 'epoch'")
    if len(events) > MAX_EVENTS:
        raise Junk("malformed", f"batch of {len(events)} events exceeds {MAX_EVENTS}")
    hooks: dict[str, int] = {}
    names: dict[str, int] = {}
    cols: dict[str, list[int]] = {k: [] for k in (*_JSON_INT, "hook", "vm_name", "out")}
    for ev in events:
        _json_event(ev, cols, hooks, names)
    arr = {k: np.array(v, np.uint64) for k, v in cols.items()}
    if len(events) and (int(arr["port"].max()) > 0xFFFF):
        raise Junk("malformed", f"port {int(arr['port'].max())} out of range 0..0xffff")
    return Columns(
        host, epoch, list(hooks), list(names), arr["seq"], arr["ts"], arr["hook"], arr["port"],
        arr["value"], arr["vm"], arr["vm_name"], arr["vcpu"], arr["out"].astype(np.bool_),
    )  # fmt: skip


def _json_event(
    ev: Any, cols: dict[str, list[int]], hooks: dict[str, int], names: dict[str, int]
) -> None:
    if not isinstance(ev, dict):
        raise Junk("malformed", "JSON event is not an object")
    for key in _JSON_INT:
        v = ev.get(key, 0)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 1 << 64:
            raise Junk("malformed", f"JSON event: '{key}' is not an unsigned integer: {v!r:.40}")
        cols[key].append(v)
    hook, name, d = ev.get("hook_id"), ev.get("vm_name", ""), ev.get("dir")
    if not isinstance(hook, str) or not isinstance(name, str) or d not in ("in", "out"):
        raise Junk("malformed", "JSON event: 'hook_id', 'vm_name' or 'dir' missing or wrong")
    cols["hook"].append(hooks.setdefault(hook, len(hooks)))
    cols["vm_name"].append(names.setdefault(name, len(names)))
    cols["out"].append(F_OUT if d == "out" else 0)
