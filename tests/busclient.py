"""A test subscriber: collects EventBatch messages (protobuf or JSON) from a real broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiomqtt

from agent.events import Event, from_json, from_proto
from agent.wire import events_pb2

__all__ = ["Collected", "collect", "decode_batch"]


def decode_batch(payload: bytes, content_type: str) -> tuple[str, str, list[Event]]:
    """(host, epoch, events) from an EventBatch payload."""
    if content_type.startswith("application/json"):
        body = json.loads(payload)
        evs = [from_json(e) for e in body["events"]]
        return body["host"], body["epoch"], evs
    batch = events_pb2.EventBatch.FromString(payload)
    return batch.host, batch.epoch, [from_proto(e) for e in batch.events]


@dataclass
class Collected:
    events: list[tuple[str, str, Event]] = field(default_factory=list)  # (topic, host, event)
    other: list[tuple[str, bytes]] = field(default_factory=list)  # (topic, payload) non-event

    def for_hook(self, hook_id: str) -> list[Event]:
        return [e for _, _, e in self.events if e.hook_id == hook_id]

    def hosts(self) -> set[str]:
        return {h for _, h, _ in self.events}


@contextlib.asynccontextmanager
async def collect(port: int, topic: str = "ioin/v1/#") -> AsyncIterator[Collected]:
    """Subscribe (MQTT 5) and collect in the background while the block runs."""
    out = Collected()
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.subscribe(topic, qos=1)

        async def pump() -> None:
            async for msg in client.messages:
                t = str(msg.topic)
                payload = (
                    msg.payload if isinstance(msg.payload, bytes) else str(msg.payload).encode()
                )
                if "/events/" in t:
                    ctype = getattr(msg.properties, "ContentType", "") if msg.properties else ""
                    host, _, evs = decode_batch(payload, ctype)
                    out.events.extend((t, host, e) for e in evs)
                else:
                    out.other.append((t, payload))

        task = asyncio.create_task(pump())
        try:
            yield out
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
