"""The MQTT topic scheme, defined once (the bus contract; DESIGN.md's table).

Agents publish under ``ioin/v1/<host>/``; every subscriber (``ioinctl watch``, the aggregator,
tests) builds its filters and reads topic names here, so the scheme is spelled in one place:

=============================== =============================================== ================
topic                           payload                                         QoS / retain
=============================== =============================================== ================
``<prefix>/<host>/events/<id>`` EventBatch (:data:`CT_PROTOBUF` or :data:`CT_JSON`) 1
``<prefix>/<host>/status``      birth (JSON); the last will says offline        1, retained
``<prefix>/<host>/notices``     drops, suppressions, backend errors (JSON)      1
``<prefix>/<host>/breaks``      a vCPU paused by a break (JSON)                 1
``<prefix>/<host>/console/<vm>`` guest serial output (raw)                      0
``<prefix>/<host>/audit``       a mutating gRPC call: who, what, result (JSON)  1
=============================== =============================================== ================

Host and hook ids never contain ``/``, ``+`` or ``#`` (:func:`agent.model.check_id`), so each is
one topic level. Part of the public contract: imports nothing but :mod:`agent.model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from agent.model import check_id

__all__ = [
    "CT_JSON",
    "CT_PROTOBUF",
    "PREFIX",
    "Kind",
    "TopicName",
    "audit",
    "breaks",
    "console",
    "events",
    "filter_for",
    "notices",
    "parse",
    "shared",
    "status",
]

PREFIX = "ioin/v1"
CT_PROTOBUF = "application/x-protobuf; proto=ioin.v1.EventBatch"
CT_JSON = "application/json"


class Kind(StrEnum):
    """The level after the host: what a topic carries."""

    EVENTS = "events"
    STATUS = "status"
    NOTICES = "notices"
    BREAKS = "breaks"
    CONSOLE = "console"
    AUDIT = "audit"


def events(host: str, hook_id: str) -> str:
    return f"{PREFIX}/{check_id('host id', host)}/{Kind.EVENTS}/{check_id('hook id', hook_id)}"


def status(host: str) -> str:
    return f"{PREFIX}/{host}/{Kind.STATUS}"


def notices(host: str) -> str:
    return f"{PREFIX}/{host}/{Kind.NOTICES}"


def breaks(host: str) -> str:
    return f"{PREFIX}/{host}/{Kind.BREAKS}"


def audit(host: str) -> str:
    return f"{PREFIX}/{host}/{Kind.AUDIT}"


def console(host: str, vm_name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in vm_name) or "vm"
    return f"{PREFIX}/{host}/{Kind.CONSOLE}/{safe}"


def filter_for(kind: Kind, host: str | None = None, rest: str | None = None) -> str:
    """A subscription filter: one ``host`` or every one (``+``); for events and console, one
    hook / VM (``rest``) or every one (``#``)."""
    base = f"{PREFIX}/{host or '+'}/{kind}"
    return f"{base}/{rest or '#'}" if kind in (Kind.EVENTS, Kind.CONSOLE) else base


def shared(group: str, topic_filter: str) -> str:
    """``topic_filter`` as an MQTT 5 shared subscription of ``group`` (consumers that scale out)."""
    return f"$share/{group}/{topic_filter}"


@dataclass(frozen=True, slots=True)
class TopicName:
    """A topic split into its levels: ``host``, ``kind`` and what follows (``rest``)."""

    host: str
    kind: str
    rest: str


def parse(topic: str) -> TopicName | None:
    """The levels of an ``ioin/v1`` topic, or ``None`` if ``topic`` is not one.

    ``kind`` is returned as written (it may be one this version does not know)."""
    head, sep, tail = topic.partition(f"{PREFIX}/")
    if head or not sep:
        return None
    levels = tail.split("/", 2)
    if len(levels) < 2:
        return None
    return TopicName(levels[0], levels[1], levels[2] if len(levels) > 2 else "")
