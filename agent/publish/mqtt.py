"""The MQTT publisher: a reconnect loop around one aiomqtt client (MQTT 5).

Local state is the truth: on every connect the retained birth (``online: true`` with version,
backend, capabilities, hooks, epoch, spool depth) is published first, then the outbox drains. The
last will, retained, says ``online: false``. The session is persistent (fixed client id, no clean
start, a session expiry interval). Up to ``max_inflight`` QoS 1 publishes are in flight; each
waits for its PUBACK with a timeout, and only then is its batch deleted from the spool. When the
connection drops, every message taken but not acknowledged is handed back to the outbox, so
nothing is lost by a reconnect (delivery is at-least-once; sequence numbers let consumers drop
duplicates). Reconnects back off exponentially with full jitter, from 0.1 s to 10 s.

Catch-up is paced: the backlog found at connect time (an outage's worth of batches) is replayed
at no more than ``catchup_rate`` batches per second, so a broker recovering from an outage is not
flattened by the whole fleet replaying at once; live traffic is not paced.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from typing import Any

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.config import MqttConfig
from agent.errors import ConfigError
from agent.publish import topics
from agent.publish.outbox import Message, Outbox
from agent.publish.tls import mqtt_context

__all__ = ["Publisher"]

log = structlog.get_logger("ioind.publish")

BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 10.0


class Publisher:
    """Drains an :class:`Outbox` to the broker; ``connected`` tells the current state."""

    def __init__(
        self,
        host: str,
        config: MqttConfig,
        outbox: Outbox,
        birth: Callable[[], dict[str, Any]],
    ) -> None:
        self._host = host
        self._config = config
        self._outbox = outbox
        self._birth = birth
        self._max_inflight = config.max_inflight
        self.connected = False
        self.published_events = 0
        self.published_messages = 0
        self.connects = 0
        self.caught_up = 0  # backlog batches replayed (paced) after connects
        self.latency = _Latency()

    async def run(self) -> None:
        """Publish until cancelled, reconnecting forever."""
        attempt = 0
        while True:
            try:
                async with self._client() as client:
                    attempt = 0
                    await self._session(client)
            except (aiomqtt.MqttError, ConfigError) as exc:  # ConfigError: unreadable TLS files
                self.connected = False
                attempt += 1
                delay = random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2**attempt))
                log.warning("broker-unavailable", error=str(exc), retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)

    def _client(self) -> aiomqtt.Client:
        cfg = self._config
        offline = json.dumps({"host": self._host, "online": False}).encode()
        return aiomqtt.Client(
            cfg.host,
            cfg.port,
            username=cfg.username or None,
            password=cfg.password or None,
            identifier=f"ioind-{self._host}",
            protocol=aiomqtt.ProtocolVersion.V5,
            will=aiomqtt.Will(topics.status(self._host), offline, qos=1, retain=True),
            keepalive=cfg.keepalive,
            timeout=cfg.ack_timeout,
            max_inflight_messages=self._max_inflight,
            clean_start=False,
            properties=_connect_props(cfg.session_expiry),
            tls_context=mqtt_context(cfg, self._host)
            if cfg.tls
            else None,  # files read at every connect
        )

    async def _session(self, client: aiomqtt.Client) -> None:
        birth = json.dumps(self._birth() | {"online": True}).encode()
        await client.publish(
            topics.status(self._host), birth, qos=1, retain=True, timeout=self._config.ack_timeout
        )
        self.connects += 1
        self.connected = True
        log.info("broker-connected", broker=f"{self._config.host}:{self._config.port}")
        inflight: dict[int, Message] = {}
        slots = asyncio.Semaphore(self._max_inflight)
        failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        tasks: set[asyncio.Task[None]] = set()
        watcher = asyncio.create_task(self._watch(client, failed))
        counter = 0
        backlog = self._outbox.spool.batches  # replayed at catchup_rate
        pace = 1.0 / self._config.catchup_rate
        try:
            while not failed.done():
                msg = await self._outbox.get()
                if msg is None:
                    continue
                if backlog > 0 and msg.spool_id:
                    backlog -= 1
                    self.caught_up += 1
                    await asyncio.sleep(pace)
                counter += 1
                inflight[counter] = msg
                await slots.acquire()
                task = asyncio.create_task(
                    self._send(client, counter, msg, inflight, slots, failed)
                )
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            for task in (*tasks, watcher):
                task.cancel()
            await asyncio.gather(*tasks, watcher, return_exceptions=True)
            self._outbox.requeue(inflight[k] for k in sorted(inflight))
        raise failed.result()

    async def _send(
        self,
        client: aiomqtt.Client,
        key: int,
        msg: Message,
        inflight: dict[int, Message],
        slots: asyncio.Semaphore,
        failed: asyncio.Future[BaseException],
    ) -> None:
        start = time.perf_counter()
        try:
            await client.publish(
                msg.topic,
                msg.payload,
                qos=msg.qos,
                retain=msg.retain,
                properties=_props(msg.content_type),
                timeout=self._config.ack_timeout,
            )
        except aiomqtt.MqttError as exc:
            if not failed.done():
                failed.set_result(exc)
                self._outbox.wake()
            return
        finally:
            slots.release()
        del inflight[key]
        self._outbox.ack(msg)
        self.latency.observe(time.perf_counter() - start)
        self.published_messages += 1
        self.published_events += msg.events

    async def _watch(self, client: aiomqtt.Client, failed: asyncio.Future[BaseException]) -> None:
        """Notice a lost connection while idle: the message iterator raises on disconnect."""
        try:
            async for _ in client.messages:
                pass  # we subscribe to nothing
        except aiomqtt.MqttError as exc:
            if not failed.done():
                failed.set_result(exc)
                self._outbox.wake()


def _connect_props(session_expiry: int) -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = session_expiry
    return props


class _Latency:
    """Publish-to-PUBACK latency, recorded per message (read by the metrics endpoint)."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    def observe(self, seconds: float) -> None:
        if len(self.samples) < 4096:  # bounded; the metrics scrape drains it
            self.samples.append(seconds)

    def drain(self) -> list[float]:
        out, self.samples = self.samples, []
        return out


def _props(content_type: str) -> Properties | None:
    if not content_type:
        return None
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ContentType = content_type
    return props
