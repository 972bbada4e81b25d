"""The MQTT publisher: a reconnect loop around one aiomqtt client (MQTT 5).

Local state is the truth: on every connect the retained birth (``online: true`` with version,
backend, capabilities, hooks, epoch, spool depth) is published first, then the outbox drains. The
last will, retained, says ``online: false``. The session is persistent (fixed client id, no clean
start, a session expiry interval). Up to ``max_inflight`` QoS 1 publishes are in flight; each
waits for its PUBACK with a timeout, and only then is its batch deleted from the spool. When the
connection drops, every message taken but not acknowledged is handed back to the outbox, so
nothing is lost by a reconnect (delivery is at-least-once; sequence numbers let consumers drop
duplicates). Reconnects back off exponentially with full jitter, from 0.1 s to 10 s.

With ``[mqtt] tls`` the TLS files are read at every connect; :meth:`Publisher.renew` (a SIGHUP
reload calls it) ends the current connection at once so that the next one presents the renewed
certificate. That is an ordinary reconnect: nothing in flight is lost.

Catch-up is paced: the backlog found at connect time (an outage's worth of batches) is replayed
at no more than ``catchup_rate`` batches per second, so a broker recovering from an outage is not
flattened by the whole fleet replaying at once; live traffic is not paced.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable
from typing import Any

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent import topics
from agent.config import MqttConfig
from agent.errors import ConfigError
from agent.publish.outbox import Message, Outbox
from agent.publish.tls import mqtt_context

__all__ = ["Publisher"]

log = structlog.get_logger("ioind.publish")

BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 10.0
FAREWELL_S = 1.0  # how long a stopping agent waits for its offline status to be acknowledged


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
        self.renewals = 0
        self.latency = _Latency()
        self._renew = asyncio.Event()

    def renew(self) -> None:
        """Reconnect now, reading the TLS files again (no-op without ``tls``)."""
        if self._config.tls:
            self._renew.set()

    async def run(self) -> None:
        """Publish until cancelled, reconnecting forever."""
        attempt = 0
        while True:
            try:
                async with self._client() as client:
                    attempt = 0
                    try:
                        await self._session(client)
                    except asyncio.CancelledError:
                        await self._farewell(client)
                        raise
            except _Renewal:
                self.connected = False
                self.renewals += 1
                log.info("broker-reconnecting", reason="renewed TLS files")
            except (aiomqtt.MqttError, ConfigError) as exc:  # ConfigError: unreadable TLS files
                self.connected = False
                _reraise_cancellation(exc)
                attempt += 1
                delay = random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2**attempt))
                log.warning("broker-unavailable", error=str(exc), retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)

    def _client(self) -> aiomqtt.Client:
        cfg = self._config
        # The will keeps the agent's identity (address, labels, epoch) so that discovery still
        # lists an agent that went away; it is fixed at connect time, like its ``ts``.
        offline = json.dumps(self._birth() | {"online": False}).encode()
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
            tls_context=mqtt_context(cfg, self._host) if cfg.tls else None,  # at every connect
        )

    async def _session(self, client: aiomqtt.Client) -> None:
        """One connection: birth, then drain the outbox until the first MQTT error.

        The sends and the disconnect watcher are one task group: the first ``MqttError`` in any
        of them cancels the rest, and whatever was taken but not acknowledged goes back to the
        outbox in ``finally`` (also when the agent itself is cancelled).
        """
        await self._announce(client)
        inflight: dict[int, Message] = {}
        failure: aiomqtt.MqttError | None = None
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._watch(client), name="mqtt-watch")
                tg.create_task(self._renewal(), name="mqtt-renew")
                await self._drain(client, tg, inflight)
        except* aiomqtt.MqttError as group:
            failure = _first(group)
        finally:
            self._outbox.requeue(inflight[k] for k in sorted(inflight))
        if failure is not None:
            raise failure

    async def _farewell(self, client: aiomqtt.Client) -> None:
        """Stopping: say ``online: false`` (retained) ourselves, as the will would have; a clean
        disconnect discards the will, and discovery would list a stopped agent as online."""
        offline = json.dumps(self._birth() | {"online": False}).encode()
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            await client.publish(
                topics.status(self._host), offline, qos=1, retain=True, timeout=FAREWELL_S
            )

    async def _announce(self, client: aiomqtt.Client) -> None:
        birth = json.dumps(self._birth() | {"online": True}).encode()
        await client.publish(
            topics.status(self._host), birth, qos=1, retain=True, timeout=self._config.ack_timeout
        )
        self.connects += 1
        self.connected = True
        log.info("broker-connected", broker=f"{self._config.host}:{self._config.port}")

    async def _drain(
        self, client: aiomqtt.Client, tg: asyncio.TaskGroup, inflight: dict[int, Message]
    ) -> None:
        """Start one send per message, at most ``max_inflight`` at once; returns only by
        cancellation (the group's first error, or the agent stopping)."""
        slots = asyncio.Semaphore(self._max_inflight)
        backlog = self._outbox.spool.batches  # replayed at catchup_rate
        pace = 1.0 / self._config.catchup_rate
        key = 0
        while True:
            msg = await self._outbox.get()
            key += 1
            inflight[key] = msg  # from here on, requeued unless acknowledged
            if backlog > 0 and msg.spool_id:
                backlog -= 1
                self.caught_up += 1
                await asyncio.sleep(pace)
            await slots.acquire()
            tg.create_task(self._send(client, key, inflight, slots))

    async def _send(
        self,
        client: aiomqtt.Client,
        key: int,
        inflight: dict[int, Message],
        slots: asyncio.Semaphore,
    ) -> None:
        msg = inflight[key]
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
        finally:
            slots.release()
        del inflight[key]
        self._outbox.ack(msg)
        self.latency.observe(time.perf_counter() - start)
        self.published_messages += 1
        self.published_events += msg.events

    async def _renewal(self) -> None:
        """End the connection when :meth:`renew` is called (set before it: at the next one)."""
        await self._renew.wait()
        self._renew.clear()
        raise _Renewal("reconnecting to present the renewed TLS files")

    async def _watch(self, client: aiomqtt.Client) -> None:
        """Notice a lost connection while idle: the message iterator raises on disconnect."""
        async for _ in client.messages:
            pass  # we subscribe to nothing


class _Renewal(aiomqtt.MqttError):
    """Ends a session on purpose, to reconnect with freshly read TLS files."""


def _reraise_cancellation(exc: BaseException) -> None:
    """A task group that failed while the agent was stopping still stops the agent: the
    cancellation it absorbed is still counted on the task."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from exc


def _first(group: BaseExceptionGroup[aiomqtt.MqttError]) -> aiomqtt.MqttError:
    """The first MQTT error of a task group's failure (the others followed from it)."""
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first


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
