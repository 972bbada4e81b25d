"""EventBatch payloads as they go on the bus: protobuf (the default) or JSON.

The content type travels in the MQTT 5 property (:data:`agent.topics.CT_PROTOBUF` /
:data:`~agent.topics.CT_JSON`); ``controller.decode`` reads both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from agent.batch import pack_batch
from agent.columns import Block
from agent.events import Event, to_json
from agent.topics import CT_JSON, CT_PROTOBUF

__all__ = ["encode_batch"]


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
