"""``ioinctl watch``: subscribe to the agents' event topics (MQTT 5) and print events as they come.

:class:`Watcher` keeps the synchronous part (topic → decode → filter → print → tally) apart from
the network loop (:meth:`Watcher.run`), so the decoding and the tolerance of junk are tested
without a broker. A malformed or foreign payload never stops the watch: it is counted, and
reported on stderr for the first one and then once per ``junk_every``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from agent.decode_guard import printable
from agent.eventline import event_line
from agent.topics import PREFIX, Kind, filter_for
from agent.topics import parse as parse_topic
from controller.brokerlogin import BrokerLogin
from controller.decode import Junk, decode_batch
from controller.errors import BrokerError
from controller.gaps import GapChecker
from controller.inventory import split_address
from controller.render import Output, warn

__all__ = ["TALLY_HOOKS", "HostTally", "WatchConfig", "Watcher", "topics"]

TALLY_HOOKS = 256  # hook ids remembered per host for the summary (a host may send any number)
_NOTICE_CHARS = 2048  # a notice is one short JSON object; longer ones are cut when shown


@dataclass(frozen=True, slots=True)
class WatchConfig:
    """What to subscribe to, what to keep, how to print, where the broker is."""

    broker: str = "127.0.0.1:1883"
    host: str | None = None
    hook: str | None = None
    port: int | None = None
    notices: bool = False
    breaks: bool = False
    output: Output = Output.TABLE
    seconds: float | None = None
    login: BrokerLogin = field(default_factory=BrokerLogin)  # the shipped broker: a reader's cert
    junk_every: int = 100
    check_gaps: bool = False
    gap_grace: float = 5.0


@dataclass(slots=True)
class HostTally:
    """What one host sent during the watch."""

    events: int = 0
    hooks: set[str] = field(default_factory=set)  # at most TALLY_HOOKS of them
    more_hooks: int = 0  # events of hooks beyond TALLY_HOOKS (not remembered)
    ports: set[int] = field(default_factory=set)


def topics(cfg: WatchConfig) -> list[str]:
    """The topic filters for ``cfg``: events (one hook or all), plus notices / breaks if asked."""
    subs = [filter_for(Kind.EVENTS, cfg.host, cfg.hook)]
    subs += [filter_for(Kind.NOTICES, cfg.host)] if cfg.notices else []
    subs += [filter_for(Kind.BREAKS, cfg.host)] if cfg.breaks else []
    return subs


class Watcher:
    """Decodes, filters, prints and tallies what arrives on the subscribed topics."""

    def __init__(self, cfg: WatchConfig, write: Callable[[str], None] | None = None) -> None:
        self.cfg = cfg
        self.tally: dict[str, HostTally] = {}
        self.junk = 0
        self._write = write or _stdout_line
        self.gaps = GapChecker(cfg.gap_grace) if cfg.check_gaps else None
        self._implausible = 0  # implausible sequence numbers reported so far

    def handle(self, topic: str, payload: bytes, content_type: str | None = None) -> None:
        """Deal with one message; junk is counted, never raised."""
        name = parse_topic(topic)
        if name is None:
            return self._junk(topic, f"not an {PREFIX} topic")
        host, kind = name.host, name.kind
        if kind == Kind.EVENTS:
            try:
                batch = decode_batch(payload, content_type, host)
            except Junk as e:
                return self._junk(topic, str(e))
            return self._events(batch.events)
        if kind in (Kind.NOTICES, Kind.BREAKS):
            return self._notice(host, kind, payload)
        return self._junk(topic, f"unexpected topic kind '{kind}'")

    async def run(self) -> None:
        """Connect, subscribe, handle messages until ``cfg.seconds`` pass (or forever)."""
        try:
            async with self._client() as client:
                for topic in topics(self.cfg):
                    await client.subscribe(topic, qos=1)
                await self._receive(client)
        except aiomqtt.MqttError as e:
            raise BrokerError(self.cfg.broker, str(e)) from e

    async def _receive(self, client: aiomqtt.Client) -> None:
        scope = asyncio.timeout(self.cfg.seconds)
        ticker = asyncio.create_task(self._tick_gaps()) if self.gaps else None
        try:
            async with scope:
                async for message in client.messages:
                    self._message(message)
        except TimeoutError:
            if not scope.expired():
                raise
        finally:
            if ticker is not None:
                ticker.cancel()
            self.check_gaps()

    async def _tick_gaps(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.check_gaps()

    def check_gaps(self, now: float | None = None) -> None:
        """Report (on stderr) sequence numbers now considered lost."""
        if self.gaps is None:
            return
        for host, epoch, lo, hi in self.gaps.tick(time.monotonic() if now is None else now):
            where = f"{host} epoch {printable(epoch)}"
            warn(f"gap: {where}: seq {lo}..{hi} missing ({hi - lo + 1} events)")

    def _message(self, message: aiomqtt.Message) -> None:
        payload = message.payload if isinstance(message.payload, bytes) else b""
        content_type = getattr(message.properties, "ContentType", None)
        self.handle(message.topic.value, payload, content_type)

    def _client(self) -> aiomqtt.Client:
        host, port = split_address(self.cfg.broker)
        login = self.cfg.login
        return aiomqtt.Client(
            host,
            port,
            identifier=f"ioinctl-watch-{os.getpid()}-{os.urandom(3).hex()}",
            protocol=aiomqtt.ProtocolVersion.V5,
            username=login.username,
            password=login.password,
            tls_params=login.tls(),
        )

    def _events(self, events: list[dict[str, Any]]) -> None:
        if self.gaps is not None:
            self._track(events)
        for ev in events:
            if self.cfg.port is not None and ev["port"] != self.cfg.port:
                continue
            if self.cfg.hook is not None and ev["hook_id"] != self.cfg.hook:
                continue
            self._count(ev)
            as_json = self.cfg.output is Output.JSON
            self._write(json.dumps(ev) if as_json else event_line(ev))

    def _track(self, events: list[dict[str, Any]]) -> None:
        assert self.gaps is not None
        now = time.monotonic()
        for ev in events:
            if self.gaps.add(str(ev["host"]), str(ev["epoch"]), int(ev["seq"]), now):
                continue
            streams = self.gaps.streams.values()
            kind, n = "duplicate", sum(t.duplicates for t in streams)
            if (odd := sum(t.implausible for t in streams)) != self._implausible:
                kind, n = "implausible", odd
                self._implausible = odd
            if n == 1 or n % self.cfg.junk_every == 0:
                warn(f"{kind}: {ev['host']} seq {ev['seq']} ({n} so far)")

    def _count(self, ev: dict[str, Any]) -> None:
        tally = self.tally.setdefault(str(ev["host"]), HostTally())
        tally.events += 1
        if len(tally.hooks) < TALLY_HOOKS or ev["hook_id"] in tally.hooks:
            tally.hooks.add(str(ev["hook_id"]))
        else:
            tally.more_hooks += 1
        tally.ports.add(ev["port"])

    def _notice(self, host: str, kind: str, payload: bytes) -> None:
        text = printable(payload.decode("utf-8", "replace").strip(), _NOTICE_CHARS)
        line = f"{kind[:-1]} {host}: {text}"
        if self.cfg.output is Output.JSON:
            warn(line)  # notices never mix into the JSON event stream on stdout
        else:
            self._write(line)

    def _junk(self, topic: str, reason: str) -> None:
        self.junk += 1
        if self.junk == 1 or self.junk % self.cfg.junk_every == 0:
            where, why = printable(topic, 200), printable(reason)
            warn(f"ignored a malformed payload on {where}: {why} ({self.junk} so far)")


def _stdout_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
