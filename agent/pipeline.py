"""The event pipeline: rate limit, sequence, batch per hook, hand to an emitter.

The pipeline is the agent's :class:`~agent.sink.EventSink`: backends call :meth:`Pipeline.events`
on the event loop thread with a list of events, :meth:`Pipeline.blocks` with
:class:`~agent.columns.Block` columns of plain events (no per-event object; the sim and the kvm C
loop), and :meth:`Pipeline.notice` with notices, which pass on to the agent's ``notice`` router
unchanged. Each event passes its hook's token bucket (``rate N burst M``;
suppressed events are counted and announced, and get no sequence number), is numbered gap-free per
agent boot, and joins its hook's batch. A batch is cut when it holds ``batch_max`` events or its
oldest event has waited ``batch_ms``, and goes to ``emit(hook_id, batch)`` — the MQTT outbox, or
stdout for ``ioind local``. A batch is one kind: a list of events or one block; a hook's pending
batch is cut early when the other kind arrives for it (only when a hook changes between logging
only and acting), so each batch is in sequence order.

Memory: pending batches hold at most ``batch_max`` events per hook; beyond that the emitter's own
bound applies (see :mod:`agent.publish.outbox`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.columns import Block
from agent.events import Event
from agent.hooks.table import HookTable
from agent.notices import Notice, NoticeKind

__all__ = ["Batch", "Emit", "Pipeline", "TokenBucket"]

Batch = list[Event] | Block
Emit = Callable[[str, Batch], None]
"""Where cut batches go: ``emit(hook_id, batch)`` (the MQTT outbox, or stdout)."""


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
        return self.take_n(now, 1) == 1

    def take_n(self, now: float, n: int) -> int:
        """How many of ``n`` events at ``now`` pass (the first ones): ``n`` calls of one token."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        passed = min(n, int(self.tokens)) if self.tokens >= 1.0 else 0
        self.tokens -= passed
        self.suppressed += n - passed
        return passed


IDLE_WAKE_S = 1.0  # with nothing pending: wake this often, for the suppression notices only


class Pipeline:
    def __init__(
        self,
        table: HookTable,
        emit: Emit,
        *,
        batch_max: int,
        batch_ms: int,
        notice: Callable[[Notice], None] | None = None,
    ) -> None:
        self._table = table
        self._emit = emit
        self._batch_max = batch_max
        self._batch_s = batch_ms / 1000
        self._notice = notice or (lambda notice: None)
        self._pending: dict[str, Batch] = {}
        self._since: dict[str, float] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._bucket_version = -1
        self._started = asyncio.Event()  # a batch began: run() has something to cut
        self.seq = 0
        self.matched = 0
        self.suppressed = 0

    def notice(self, notice: Notice) -> None:
        """A backend's notice: to the agent's router as it is."""
        self._notice(notice)

    def events(self, events: list[Event]) -> None:
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
            if buf is None or isinstance(buf, Block):
                if buf is not None:
                    self._cut(ev.hook_id)
                buf = pending[ev.hook_id] = []
                self._since[ev.hook_id] = now
                self._started.set()
            buf.append(ev)
            if len(buf) >= limit:
                self._cut(ev.hook_id)

    def blocks(self, blocks: list[Block]) -> None:
        """Like :meth:`events` for plain events in columns: numbered by range, batched by slice."""
        if self._bucket_version != self._table.version:
            self._refresh_buckets()
        now = time.monotonic()
        for block in blocks:
            n = len(block)
            self.matched += n
            bucket = self._buckets.get(block.hook_id)
            if bucket is not None and (n := bucket.take_n(now, n)) < len(block):
                block = block.head(n)
            if n:
                block.seq = list(range(self.seq + 1, self.seq + 1 + n))
                self.seq += n
                self._add_block(block, now)

    def _add_block(self, block: Block, now: float) -> None:
        hook_id = block.hook_id
        buf = self._pending.get(hook_id)
        if not isinstance(buf, Block):
            if buf is not None:
                self._cut(hook_id)
            buf = self._pending[hook_id] = Block.empty(hook_id)  # owns its lists
            self._since[hook_id] = now
            self._started.set()
        buf.extend(block)
        while len(buf) > self._batch_max:
            self._emit_batch(hook_id, buf.take(self._batch_max))
        if len(buf) == self._batch_max:
            self._cut(hook_id)

    def flush(self, older_than: float = 0.0) -> None:
        """Cut every batch whose oldest event waited at least ``older_than`` seconds."""
        now = time.monotonic()
        for hook_id in [h for h, t in self._since.items() if now - t >= older_than]:
            self._cut(hook_id)

    async def run(self) -> None:
        """Cut aged batches every half batch interval while any is pending; announce
        suppressions every second.

        With nothing pending it sleeps until a batch begins (or a second passes, for the
        notices): an idle agent does not wake 50 times a second (bench/bench_idle.py).
        """
        last_notice = time.monotonic()
        try:
            while True:
                if self._since:
                    await asyncio.sleep(self._batch_s / 2)
                else:
                    self._started.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(IDLE_WAKE_S):
                            await self._started.wait()
                self.flush(self._batch_s)
                if time.monotonic() - last_notice >= 1.0:
                    last_notice = time.monotonic()
                    self._announce_suppressed()
        finally:
            self.flush()

    def _cut(self, hook_id: str) -> None:
        batch = self._pending.pop(hook_id)
        del self._since[hook_id]
        self._emit_batch(hook_id, batch)

    def _emit_batch(self, hook_id: str, batch: Batch) -> None:
        self._table.count_hits(hook_id, len(batch))
        self._emit(hook_id, batch)

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
                fields = {"hook_id": hook_id, "events": n, "rate": bucket.rate}
                self._notice(Notice(NoticeKind.SUPPRESSED, fields))
