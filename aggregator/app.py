"""The composition root: store, ingestor, alert engine, bus, gRPC service and metrics, run as
one task group. Store calls run in one writer thread (and the service's reads in another)."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from agent.decode_guard import EventRefused, load_json
from agent.sdnotify import Notifier, watchdog_interval
from agent.topics import PREFIX
from aggregator.alerts import Alert, Engine, load_rules
from aggregator.bus import Bus, Inbound
from aggregator.config import Config
from aggregator.decode import Window
from aggregator.errors import ConfigError, StoreError
from aggregator.ingest import Ingestor
from aggregator.metrics import AggCollector, serve_metrics
from aggregator.query import Reader
from aggregator.rollup import Rollup
from aggregator.service import AggregatorService, create_server
from aggregator.store import open_store

__all__ = ["App", "split_topic"]

log = structlog.get_logger("ioinagg")
MAINTAIN_S = 10.0
MAX_RANGES = 1000  # seen ranges per (host, epoch) before the oldest holes are given up


def split_topic(topic: str) -> tuple[str, str]:
    """(host, kind) of ``ioin/v1/<host>/<kind>[/...]``; kind '' when not ours."""
    if not topic.startswith(PREFIX + "/"):
        return "", ""
    parts = topic[len(PREFIX) + 1 :].split("/")
    if len(parts) == 3 and parts[1] == "events":
        return parts[0], "events"
    return (parts[0], parts[1]) if len(parts) == 2 else (parts[0], "")


@dataclass(slots=True)
class _Side:
    """Status and notice messages of one group commit, applied in its transaction."""

    births: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    drops: list[tuple[str, int]] = field(default_factory=list)


class App:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.store = open_store(cfg.store, cfg.state_dir)
        self.reader = Reader(open_store(cfg.store, cfg.state_dir))
        window = Window(cfg.ingest.max_past_s, cfg.ingest.max_future_s)
        self.ingestor = Ingestor(self.store, window)
        self.labels: dict[str, dict[str, str]] = {h.host: h.labels for h in self.reader.hosts()}
        self.bus = Bus(cfg, self.handle)
        self.engine = Engine(self._publish, lambda h: self.labels.get(h, {}))
        self.engine.remember(
            (str(h), int(vm), int(p))
            for h, vm, p in self.store.fetch("SELECT DISTINCT host, vm, port FROM r_h")
        )
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="ioinagg-store")
        self.rate = 0.0
        self._store_logged = 0.0
        self.port = 0
        self.metrics_port = 0

    def _publish(self, alert: Alert) -> None:
        log.warning("alert", rule=alert.rule, host=alert.host, vm=alert.vm, reason=alert.reason)
        self.bus.publish_alert(f"{PREFIX}/alerts/{alert.rule}", alert.payload())

    async def handle(self, batch: list[Inbound]) -> None:
        """One group commit; retried until the store takes it (messages stay unacknowledged)."""
        events: list[tuple[str, bytes, str]] = []
        side = _Side()
        for m in batch:
            self._sort(m, events, side)
        delay = 0.1
        while True:
            try:
                rollups = await asyncio.get_running_loop().run_in_executor(
                    self._writer, self._apply, events, side
                )
                break
            except StoreError as exc:
                self.ingestor.stats.store_errors += 1
                if time.monotonic() - self._store_logged >= 10.0:
                    self._store_logged = time.monotonic()
                    log.error("store-failed", error=str(exc), retry_in_s=delay,
                              failures=self.ingestor.stats.store_errors)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        for host, doc in side.births:
            if isinstance(doc.get("labels"), dict):
                self.labels[host] = {str(k): str(v) for k, v in doc["labels"].items()}
        self.engine.feed(rollups)

    def _apply(self, events: list[tuple[str, bytes, str]], side: _Side) -> list[Rollup]:
        def also() -> None:
            for host, doc in side.births:
                self.store.birth(host, doc)
            for host, n in side.drops:
                self.store.drops(host, n)

        return self.ingestor.commit(events, also)

    def _sort(self, m: Inbound, events: list[tuple[str, bytes, str]], side: _Side) -> None:
        host, kind = split_topic(m.topic)
        if kind == "events":
            events.append((host, m.payload, m.content_type))
            return
        if kind not in ("status", "notices"):
            self.ingestor.skip("topic", f"not an ioin/v1 topic we read: '{m.topic[:80]}'", host)
            return
        try:
            doc = load_json(m.payload)  # size and nesting checked: no RecursionError
        except EventRefused:
            doc = None
        if not isinstance(doc, dict) or doc.get("host") != host:
            self.ingestor.skip("malformed", f"{kind} message is not JSON from '{host}'", host)
        elif kind == "status":
            side.births.append((host, doc))
        elif doc.get("kind") == "drops":
            n = doc.get("events")
            if isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 1 << 62:
                side.drops.append((host, n))
            else:
                self.ingestor.skip("malformed", f"drops notice with events {n!r:.30}", host)

    async def run(self) -> None:
        service = AggregatorService(
            self.reader, lambda: self.labels, lambda: self.engine.recent, lambda: self.rate
        )
        server, self.port = create_server(self.cfg, service)
        await server.start()
        if self.cfg.metrics:
            collector = AggCollector(
                self.ingestor.stats,
                lambda: dict(self.engine.fired),
                lambda: {
                    "broker_connected": float(self.bus.connected),
                    "alerts_dropped_total": float(self.bus.alerts_dropped),
                    "inbound_dropped_total": float(self.bus.inbound_dropped),
                    "ingest_rate": self.rate,
                },
            )
            self.metrics_port = serve_metrics(self.cfg.metrics, collector)
        log.info(
            "serving", listen=self.port, metrics=self.metrics_port, store=self.store.dialect.name
        )
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.bus.run(), name="bus")
                tg.create_task(self._maintain(), name="maintain")
                tg.create_task(self._rules(), name="rules")
                tg.create_task(self._measure(), name="rate")
                tg.create_task(self._systemd(), name="systemd")
        finally:
            await server.stop(1.0)

    async def _systemd(self) -> None:
        """systemd's notify protocol (deploy/ioinagg.service is ``Type=notify``): ``READY=1`` once
        gRPC serves (it does before this task starts), ``WATCHDOG=1`` from this event loop every
        half period (a stuck loop gets the aggregator restarted), ``STATUS=`` when it changes."""
        notifier, period = Notifier.from_env(), watchdog_interval()
        if not notifier.enabled:
            return
        shown = self._status()
        notifier.ready(shown)
        try:
            while True:
                await asyncio.sleep(period / 2 if period else 1.0)
                if period:
                    notifier.watchdog()
                if (line := self._status()) != shown:
                    notifier.status(line)
                    shown = line
        finally:
            notifier.stopping()
            notifier.close()

    def _status(self) -> str:
        broker = "connected" if self.bus.connected else "disconnected"
        return f"broker {broker}, {self.rate:.0f} events/s, store {self.store.dialect.name}"

    async def _measure(self) -> None:
        prev, t0 = self.ingestor.stats.events, time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            now, events = time.monotonic(), self.ingestor.stats.events
            self.rate, prev, t0 = (events - prev) / (now - t0), events, now

    async def _maintain(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(MAINTAIN_S)
            try:
                await loop.run_in_executor(
                    self._writer,
                    self.store.maintain,
                    int(time.time()),
                    self.cfg.retention,
                    MAX_RANGES,
                )
            except StoreError as exc:
                log.error("maintain-failed", error=str(exc))

    async def _rules(self) -> None:
        if not self.cfg.alerts:
            return
        path, seen = Path(self.cfg.alerts), -1.0
        while True:
            try:
                mtime = (await asyncio.to_thread(path.stat)).st_mtime
            except OSError as exc:
                mtime = -2.0
                if seen != mtime:
                    log.error("alert-rules-unreadable", path=str(path), error=str(exc))
            if mtime != seen and mtime >= 0:
                try:
                    self.engine.set_rules(load_rules(path))
                    log.info("alert-rules-loaded", path=str(path), rules=len(self.engine.rules))
                except ConfigError as exc:
                    log.error("alert-rules-refused", error=str(exc))
            seen = mtime
            await asyncio.sleep(2.0)
