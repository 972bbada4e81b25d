"""Defensive decoding of what agents publish: the limits every consumer of the bus applies.

Any host may publish on its own topic, so ``ioinctl watch`` and the aggregator treat each payload
as hostile. Before anything is decoded the payload's size is checked; before JSON is parsed its
nesting depth is measured without recursion; after decoding every event field is type- and
range-checked against the wire types of ``ioin.v1.Event`` (a ``ts`` of 10**30 or a ``port`` of
70000 is refused, not rendered). Text fields are bounded, ids must be ids, and
:func:`printable` escapes control characters before any text reaches a terminal.

What fails raises :class:`EventRefused` naming the field; the consumer counts it and skips it.

API (a contract module: the controller and the aggregator import it)::

    Limits(max_payload, max_depth, max_events, max_text, max_data, max_regs), DEFAULT_LIMITS
    check_size(payload, limits)           -> None  (EventRefused when too large)
    load_json(payload, limits)            -> Any   (size and depth first; never RecursionError)
    check_event(obj, host, epoch, limits) -> dict  (every key of agent.events.JSON_KEYS, checked)
    printable(text, limit)                -> str   (control characters escaped, bounded)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from agent.errors import AgentError
from agent.events import JSON_KEYS
from agent.model import ID_PATTERN, MAX_PORT, printable

__all__ = [
    "DEFAULT_LIMITS",
    "EventRefused",
    "Limits",
    "check_event",
    "check_size",
    "load_json",
    "printable",
]

U32, U64, I32 = 2**32 - 1, 2**64 - 1, 2**31 - 1  # the wire types of ioin.v1.Event


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on one payload; the defaults admit anything a well-behaved agent publishes."""

    max_payload: int = 32 * 2**20  # bytes: 100,000 events (mqtt.batch_max's ceiling) as JSON
    max_depth: int = 8  # a batch is 4 deep (batch → events → event → data/regs)
    max_events: int = 100_000  # mqtt.batch_max's ceiling in agent.config
    max_text: int = 256  # epoch, vm_name, break_id, register names
    max_data: int = 65_536  # elements of string I/O (a REP INS/OUTS) in one event
    max_regs: int = 64
    max_output: int = 16_384  # characters a hook's script printed at one hit (the agent caps 4096)


DEFAULT_LIMITS = Limits()


class EventRefused(AgentError, ValueError):
    """A payload or event outside the limits; ``field`` names what (``payload`` for the whole)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"'{field}' {reason}")


def check_size(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse a payload larger than ``limits.max_payload``."""
    if len(payload) > limits.max_payload:
        raise EventRefused("payload", f"is {len(payload)} bytes, over {limits.max_payload}")


# A JSON string (the unrolled form: linear, no backtracking), and every byte but brackets.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def json_depth(payload: bytes) -> int:
    """How deep the payload's arrays and objects nest (brackets inside strings ignored)."""
    brackets = _STRING.sub(b"", payload).translate(None, _NOT_BRACKET)
    return max(accumulate(_STEP[b] for b in brackets), default=0)


def load_json(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Parse JSON whose size and nesting are within ``limits``."""
    check_size(payload, limits)
    depth = json_depth(payload)
    if depth > limits.max_depth:
        raise EventRefused("payload", f"nests {depth} deep, over {limits.max_depth}")
    try:
        return json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EventRefused("payload", f"is not JSON: {e}") from None


# (kind, low, high) per integer key; optional ones (None allowed) are in _NULLABLE.
_INTS: Mapping[str, tuple[int, int]] = {
    "seq": (1, U64),
    "ts": (0, U64),
    "port": (0, MAX_PORT),
    "count": (0, U32),
    "value": (0, U32),
    "vm": (0, U32),
    "vcpu": (0, U32),
    "cpu": (-1, I32),
    "rip": (0, U64),
    "value_set": (0, U32),
}
_NULLABLE = frozenset({"rip", "value_set", "break_id", "output"})  # output: None when empty
_BOOLS = ("string", "rep", "skipped")
_CHOICES: Mapping[str, tuple[object, ...]] = {
    "dir": ("in", "out"),
    "size": (1, 2, 4),
    "stage": ("pre", "post"),
}
_REQUIRED = ("seq", "ts", "hook_id", "dir", "port")
# What an absent optional key means (as agent.events.to_json would give it).
_DEFAULTS: Mapping[str, Any] = {
    "size": 1,
    "count": 1,
    "string": False,
    "rep": False,
    "value": 0,
    "data": [],
    "vm": 0,
    "vm_name": "",
    "vcpu": 0,
    "cpu": -1,
    "rip": None,
    "regs": {},
    "stage": "pre",
    "value_set": None,
    "skipped": False,
    "break_id": None,
    "output": None,  # absent from agents older than scripts
}


def check_event(
    obj: object, host: str, epoch: str, limits: Limits = DEFAULT_LIMITS
) -> dict[str, Any]:
    """The event's JSON object with every key of ``JSON_KEYS``, each checked; or EventRefused."""
    if not isinstance(obj, Mapping):
        raise EventRefused("event", "is not an object")
    missing = [k for k in _REQUIRED if k not in obj]
    if missing:
        raise EventRefused(missing[0], "is missing")
    ev = {k: obj.get(k, _DEFAULTS.get(k)) for k in JSON_KEYS}
    ev["host"], ev["epoch"] = host, epoch
    for key, value in ev.items():
        if not (value is None and key in _NULLABLE):
            _check(key, value, limits)
    return ev


def _check(key: str, value: Any, limits: Limits) -> None:
    if key in _INTS:
        _int(key, value, *_INTS[key])
    elif key in _BOOLS:
        if not isinstance(value, bool):
            raise EventRefused(key, f"is {type(value).__name__}, not a boolean")
    elif key in _CHOICES:
        if isinstance(value, bool) or value not in _CHOICES[key]:
            raise EventRefused(key, f"is not one of {', '.join(map(str, _CHOICES[key]))}")
    elif key in ("host", "hook_id"):
        if not isinstance(value, str) or not ID_PATTERN.match(value):
            raise EventRefused(key, "is not an id ([a-z0-9][a-z0-9._-]{0,63})")
    elif key == "data":
        _list(key, value, limits.max_data)
        for x in value:
            _int(key, x, 0, U32)
    elif key == "regs":
        _regs(value, limits)
    elif key == "output":
        _text(key, value, limits.max_output)
    else:  # epoch, vm_name, break_id
        _text(key, value, limits.max_text)


def _int(key: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise EventRefused(key, f"is {type(value).__name__}, not an integer")
    if not low <= value <= high:
        raise EventRefused(key, f"is out of range {low}..{high}")


def _text(key: str, value: object, limit: int) -> None:
    if not isinstance(value, str):
        raise EventRefused(key, f"is {type(value).__name__}, not a string")
    if len(value) > limit:
        raise EventRefused(key, f"is {len(value)} characters long, over {limit}")


def _list(key: str, value: object, limit: int) -> None:
    if not isinstance(value, list):
        raise EventRefused(key, f"is {type(value).__name__}, not a list")
    if len(value) > limit:
        raise EventRefused(key, f"has {len(value)} elements, over {limit}")


def _regs(value: object, limits: Limits) -> None:
    if not isinstance(value, dict):
        raise EventRefused("regs", f"is {type(value).__name__}, not an object")
    if len(value) > limits.max_regs:
        raise EventRefused("regs", f"has {len(value)} registers, over {limits.max_regs}")
    for name, reg in value.items():
        _text("regs", name, limits.max_text)
        _int("regs", reg, 0, U64)
