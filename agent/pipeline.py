"""The event pipeline: rate limit, sequence, batch per hook, hand to an emitter.

Backends call :meth:`Pipeline.submit` on the event loop thread with a list of events. Each event
passes its hook's token bucket (``rate N burst M``; suppressed events are counted and announced,
and get no sequence number), is numbered gap-free per agent boot, and joins its hook's batch. A
batch is cut when it holds ``batch_max`` events or its oldest event has waited ``batch_ms``, and
goes to ``emit(hook_id, events)`` — the MQTT outbox, or stdout for ``ioind local``.

Memory: pending batches hold at most ``batch_max`` events per hook; beyond that the emitter's own
bound applies (see :mod:`agent.publish.outbox`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.events import Event
from agent.hooks.table import HookTable

__all__ = ["Emit", "Pipeline", "TokenBucket"]

Emit = Callable[[str, list[Event]], None]


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved."""

    rate: float
    burst: float
    tokens: float = 0.0
    stamp: float = field(default_factory=time.monotonic)
    suppressed: int = 0

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        self.suppressed += 1
        return False


class Pipeline:
    def __init__(
        self,
        table: HookTable,
        emit: Emit,
        *,
        batch_max: int,
        batch_ms: int,
        notice: Callable[[str, dict[str, object]], None] | None = None,
    ) -> None:
        self._table = table
        self._emit = emit
        self._batch_max = batch_max
        self._batch_s = batch_ms / 1000
        self._notice = notice or (lambda kind, fields: None)
        self._pending: dict[str, list[Event]] = {}
        self._since: dict[str, float] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._bucket_version = -1
        self.seq = 0
        self.matched = 0
        self.suppressed = 0

    def submit(self, events: list[Event]) -> None:
        """Number, rate-limit and batch ``events`` (event loop thread only)."""
        if self._bucket_version != self._table.version:
            self._refresh_buckets()
        self.matched += len(events)
        now = time.monotonic()
        if self._buckets:
            buckets = self._buckets
            events = [e for e in events if (b := buckets.get(e.hook_id)) is None or b.take(now)]
        seq = self.seq
        for ev in events:
            seq += 1
            ev.seq = seq
        self.seq = seq
        pending, limit = self._pending, self._batch_max
        for ev in events:
            buf = pending.get(ev.hook_id)
            if buf is None:
                buf = pending[ev.hook_id] = []
                self._since[ev.hook_id] = now
            buf.append(ev)
            if len(buf) >= limit:
                self._cut(ev.hook_id)

    def flush(self, older_than: float = 0.0) -> None:
        """Cut every batch whose oldest event waited at least ``older_than`` seconds."""
        now = time.monotonic()
        for hook_id in [h for h, t in self._since.items() if now - t >= older_than]:
            self._cut(hook_id)

    async def run(self) -> None:
        """Cut aged batches every half batch interval; announce suppressions every second."""
        last_notice = time.monotonic()
        try:
            while True:
                await asyncio.sleep(self._batch_s / 2)
                self.flush(self._batch_s)
                if time.monotonic() - last_notice >= 1.0:
                    last_notice = time.monotonic()
                    self._announce_suppressed()
        finally:
            self.flush()

    def _cut(self, hook_id: str) -> None:
        events = self._pending.pop(hook_id)
        del self._since[hook_id]
        self._table.count_hits(hook_id, len(events))
        self._emit(hook_id, events)

    def _refresh_buckets(self) -> None:
        old = self._buckets
        self._buckets = {
            r.id: old.get(r.id) or TokenBucket(float(r.rate), float(r.burst or r.rate))
            for r in self._table.rules()
            if r.rate
        }
        self._bucket_version = self._table.version

    def _announce_suppressed(self) -> None:
        for hook_id, bucket in self._buckets.items():
            if bucket.suppressed:
                n, bucket.suppressed = bucket.suppressed, 0
                self.suppressed += n
                self._notice("suppressed", {"hook_id": hook_id, "events": n, "rate": bucket.rate})
