"""MQTT topic names and payload encodings (the bus contract; see the README's table)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from agent.batch import Block, pack_batch
from agent.events import Event, to_json
from agent.model import check_id

__all__ = [
    "CT_JSON",
    "CT_PROTOBUF",
    "PREFIX",
    "audit",
    "breaks",
    "console",
    "encode_batch",
    "events",
    "notices",
    "status",
]

PREFIX = "ioin/v1"
CT_PROTOBUF = "application/x-protobuf; proto=ioin.v1.EventBatch"
CT_JSON = "application/json"


def events(host: str, hook_id: str) -> str:
    return f"{PREFIX}/{check_id('host id', host)}/events/{check_id('hook id', hook_id)}"


def status(host: str) -> str:
    return f"{PREFIX}/{host}/status"


def audit(host: str) -> str:
    return f"{PREFIX}/{host}/audit"


def notices(host: str) -> str:
    return f"{PREFIX}/{host}/notices"


def breaks(host: str) -> str:
    return f"{PREFIX}/{host}/breaks"


def console(host: str, vm_name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in vm_name) or "vm"
    return f"{PREFIX}/{host}/console/{safe}"


def encode_batch(
    host: str, epoch: str, evs: Sequence[Event] | Block, fmt: str
) -> tuple[bytes, str]:
    """An EventBatch payload and its content type (``fmt``: protobuf or json)."""
    if fmt == "json":
        if isinstance(evs, Block):
            evs = evs.events()
        body = {"host": host, "epoch": epoch, "events": [to_json(e, host, epoch) for e in evs]}
        return json.dumps(body, separators=(",", ":")).encode(), CT_JSON
    batch = evs if isinstance(evs, Block) else list(evs)
    return pack_batch(host, epoch, batch).SerializeToString(), CT_PROTOBUF
