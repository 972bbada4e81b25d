"""Test subscribers: collect EventBatch messages (protobuf or JSON) from a real broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import NamedTuple

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.batch import batch_events
from agent.events import Event, from_json
from agent.wire import events_pb2

__all__ = ["Collected", "Got", "collect", "collect_durable", "decode_batch"]


def decode_batch(payload: bytes, content_type: str) -> tuple[str, str, list[Event]]:
    """(host, epoch, events) from an EventBatch payload."""
    if content_type.startswith("application/json"):
        body = json.loads(payload)
        return body["host"], body["epoch"], [from_json(e) for e in body["events"]]
    batch = events_pb2.EventBatch.FromString(payload)
    return batch.host, batch.epoch, batch_events(batch)


class Got(NamedTuple):
    topic: str
    host: str
    epoch: str
    event: Event


@dataclass
class Collected:
    events: list[Got] = field(default_factory=list)
    other: list[tuple[str, bytes]] = field(default_factory=list)  # (topic, payload) non-event
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, msg: aiomqtt.Message) -> None:
        topic = str(msg.topic)
        payload = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload).encode()
        if "/events/" not in topic:
            self.other.append((topic, payload))
            return
        ctype = getattr(msg.properties, "ContentType", "") if msg.properties else ""
        host, epoch, evs = decode_batch(payload, ctype)
        self.events.extend(Got(topic, host, epoch, e) for e in evs)

    def for_hook(self, hook_id: str) -> list[Event]:
        return [g.event for g in self.events if g.event.hook_id == hook_id]

    def hosts(self) -> set[str]:
        return {g.host for g in self.events}

    async def settle(self, host: str, expected: int, within: float = 30.0) -> None:
        """Wait until ``expected`` distinct events from ``host`` arrived (or ``within`` passes:
        the caller's assertions then show what is missing)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            if len({(g.epoch, g.event.seq) for g in self.events if g.host == host}) >= expected:
                return
            await asyncio.sleep(0.2)

    def seqs(self, host: str) -> dict[str, list[int]]:
        """Sequence numbers received from ``host``, by epoch (duplicates kept)."""
        out: dict[str, list[int]] = {}
        for g in self.events:
            if g.host == host:
                out.setdefault(g.epoch, []).append(g.event.seq)
        return out


@contextlib.asynccontextmanager
async def _pumping(client: aiomqtt.Client, out: Collected) -> AsyncIterator[None]:
    async def pump() -> None:
        async for msg in client.messages:
            out.add(msg)

    task = asyncio.create_task(pump())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def collect(port: int, topic: str = "ioin/v1/#") -> AsyncIterator[Collected]:
    """Subscribe (MQTT 5) and collect in the background while the block runs."""
    out = Collected()
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.subscribe(topic, qos=1)
        async with _pumping(client, out):
            yield out


@contextlib.asynccontextmanager
async def collect_durable(port: int, topic: str, client_id: str) -> AsyncIterator[Collected]:
    """Like :func:`collect`, but survives a broker restart: a persistent MQTT 5 session
    (fixed client id, no clean start, session expiry) and a reconnect loop."""
    out = Collected()

    async def session() -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 600
        client = aiomqtt.Client(
            "127.0.0.1",
            port,
            identifier=client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
            max_queued_incoming_messages=0,
        )
        async with client:
            await client.subscribe(topic, qos=1)
            out.connected.set()
            async for msg in client.messages:
                out.add(msg)

    async def reconnecting() -> None:
        while True:
            try:
                await session()
            except aiomqtt.MqttError:
                out.connected.clear()
                await asyncio.sleep(0.2)

    task = asyncio.create_task(reconnecting())
    try:
        await asyncio.wait_for(out.connected.wait(), 10)
        yield out
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
