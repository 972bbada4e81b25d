"""The MQTT side: one persistent MQTT 5 session, group commits, acknowledgements after commit.

Subscriptions: ``$share/<group>/ioin/v1/+/events/#`` and ``$share/<group>/ioin/v1/+/notices``
(each message to one instance of the group), and ``ioin/v1/+/status`` (every instance sees the
retained births and wills; shared subscriptions get no retained messages).

Exactly-once rests on the acknowledgement order: a QoS 1 message is acknowledged (PUBACK) only
after the transaction counting it committed. aiomqtt 2.5 has no manual acknowledgement, so
paho's (``manual_ack_set`` / ``ack``) is reached through aiomqtt's client in :func:`_paho`, the
one place that does. The session is persistent (fixed client id, no clean start, an expiry), so
messages taken but not acknowledged when this process dies are delivered again, to this instance
when it returns or to another of the group.

Memory: the MQTT 5 Receive Maximum bounds the QoS 1 messages in flight to ``receive_max``; the
broker queues the rest in the session (its ``max_queued_messages`` policy applies beyond that).
The local queue holds at most ``2 * receive_max`` messages: only QoS 0 publishes, which flow
control does not cover, can find it full; they are dropped and counted (``inbound_dropped``).
Alerts wait in a bounded deque while the broker is away (oldest dropped first, counted in
``alerts_dropped``).
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.topics import PREFIX
from aggregator.config import Config, split_address

__all__ = ["Bus", "Inbound"]

log = structlog.get_logger("ioinagg.bus")
ALERT_QUEUE = 1000


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message taken from the broker: topic, payload, content type."""

    topic: str
    payload: bytes
    content_type: str
    mid: int
    qos: int


Handler = Callable[[list[Inbound]], Awaitable[None]]


def _paho(client: aiomqtt.Client) -> Any:
    return client._client  # aiomqtt keeps paho's client here; see the module docstring


class Bus:
    """Reconnects forever; hands each group commit to ``handle`` and acknowledges after it."""

    def __init__(self, cfg: Config, handle: Handler) -> None:
        self._cfg = cfg
        self._handle = handle
        self._alerts: deque[tuple[str, bytes]] = deque(maxlen=ALERT_QUEUE)
        self._wake = asyncio.Event()
        self.connected = False
        self.alerts_dropped = 0
        self.alerts_published = 0
        self.inbound_dropped = 0

    def publish_alert(self, topic: str, payload: bytes) -> None:
        if len(self._alerts) == ALERT_QUEUE:
            self.alerts_dropped += 1
        self._alerts.append((topic, payload))
        self._wake.set()

    async def run(self) -> None:
        attempt = 0
        while True:
            try:
                async with self._client() as client:
                    attempt = 0
                    await self._session(client)
            except aiomqtt.MqttError as exc:
                self.connected = False
                attempt += 1
                delay = random.uniform(0, min(10.0, 0.1 * 2**attempt))
                log.warning("broker-unavailable", error=str(exc), retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)

    def _client(self) -> aiomqtt.Client:
        cfg = self._cfg
        host, port = split_address("broker", cfg.broker)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = cfg.session_expiry
        props.ReceiveMaximum = cfg.ingest.receive_max
        client = aiomqtt.Client(
            host,
            port,
            identifier=f"ioinagg-{cfg.group}-{cfg.id}",
            username=cfg.username or None,
            password=cfg.password or None,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
            keepalive=30,
            tls_params=aiomqtt.TLSParameters(
                ca_certs=cfg.mqtt_ca, certfile=cfg.mqtt_cert or None, keyfile=cfg.mqtt_key or None
            )
            if cfg.mqtt_ca
            else None,
        )
        _paho(client).manual_ack_set(True)
        return client

    async def _session(self, client: aiomqtt.Client) -> None:
        group = self._cfg.group
        for topic in (
            f"$share/{group}/{PREFIX}/+/events/#",
            f"$share/{group}/{PREFIX}/+/notices",
            f"{PREFIX}/+/status",
        ):
            await client.subscribe(topic, qos=1)
        self.connected = True
        log.info("broker-connected", broker=self._cfg.broker, group=group)
        queue: asyncio.Queue[Inbound] = asyncio.Queue(2 * self._cfg.ingest.receive_max)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._read(client, queue))
                tg.create_task(self._send_alerts(client))
                await self._commit_loop(client, queue)
        except* aiomqtt.MqttError as group:  # the connection dropped: one error, reconnect
            raise group.exceptions[0] from None

    async def _read(self, client: aiomqtt.Client, queue: asyncio.Queue[Inbound]) -> None:
        async for m in client.messages:
            ctype = getattr(m.properties, "ContentType", "") if m.properties else ""
            payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
            try:
                queue.put_nowait(Inbound(m.topic.value, payload, ctype or "", m.mid, m.qos))
            except asyncio.QueueFull:  # QoS 1 is unacknowledged, so the broker sends it again
                self.inbound_dropped += 1
        raise aiomqtt.MqttError("message stream ended")

    async def _commit_loop(self, client: aiomqtt.Client, queue: asyncio.Queue[Inbound]) -> None:
        ing = self._cfg.ingest
        while True:
            batch = [await queue.get()]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + ing.commit_ms / 1000
            while len(batch) < ing.commit_max:
                try:
                    batch.append(await asyncio.wait_for(queue.get(), deadline - loop.time()))
                except TimeoutError:
                    break
            await self._handle(batch)  # retries until committed; raises only on cancellation
            paho = _paho(client)
            for m in batch:
                if m.qos:
                    paho.ack(m.mid, m.qos)

    async def _send_alerts(self, client: aiomqtt.Client) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._alerts:
                topic, payload = self._alerts[0]
                await client.publish(topic, payload, qos=1, timeout=10)
                self._alerts.popleft()
                self.alerts_published += 1
