"""Counting batches exactly once: decode, split into sequence runs, claim, roll up, store.

:meth:`Ingestor.commit` takes the messages of one group commit: every events payload is decoded
(foreign ones counted and skipped), cut into runs of consecutive sequence numbers, and handed to
the store, which claims the runs and adds the claimed events' rollups in ONE transaction. A
store failure raises :class:`StoreError` with nothing committed; the caller keeps the messages
unacknowledged and retries, so the broker still holds them if this process dies.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import structlog

from aggregator.decode import Window, decode
from aggregator.errors import Junk
from aggregator.rollup import Rollup, roll_up
from aggregator.store import Run, Store
from aggregator.wire import Columns

__all__ = ["Ingestor", "Prepared", "Stats", "prepare"]

log = structlog.get_logger("ioinagg.ingest")


@dataclass(slots=True)
class Prepared:
    """A batch's columns, its runs, and for each event its run (-1: repeated in the batch)."""

    cols: Columns
    runs: list[Run]
    run_of: npt.NDArray[np.intp]


def prepare(cols: Columns) -> Prepared:
    """Cut the batch's distinct sequence numbers into runs of consecutive numbers."""
    seq = cols.seq
    step = np.diff(seq.astype(np.int64))
    if step.size == 0 or bool((step > 0).all()):  # ascending, no repeats: the agents' case
        starts = np.flatnonzero(np.concatenate(([True], step != 1)))
        run_of = np.cumsum(np.concatenate(([True], step != 1))) - 1
        ends = np.append(starts[1:], seq.size) - 1
        los, his = seq[starts].tolist(), seq[ends].tolist()
    else:
        uniq, first, inverse = np.unique(seq, return_index=True, return_inverse=True)
        ustarts = np.concatenate(([True], np.diff(uniq) != 1))
        run_of = (np.cumsum(ustarts) - 1)[inverse]
        repeated = np.ones(len(cols), np.bool_)
        repeated[first] = False
        run_of[repeated] = -1
        starts = np.flatnonzero(ustarts)
        ends = np.append(starts[1:], uniq.size) - 1
        los, his = uniq[starts].tolist(), uniq[ends].tolist()
    runs = [(cols.host, cols.epoch, lo, hi) for lo, hi in zip(los, his, strict=True)]
    return Prepared(cols, runs, run_of.astype(np.intp))


@dataclass(slots=True)
class Stats:
    """Counters (read by the metrics endpoint and the Top stream)."""

    events: int = 0  # counted into the rollups
    duplicates: int = 0  # events dropped as already counted
    batches: int = 0
    junk: Counter[str] = field(default_factory=Counter)  # payloads skipped, by kind
    store_errors: int = 0
    newest_ts: int = 0  # ns, the newest event counted
    store_seconds: list[float] = field(default_factory=list)  # commit latencies, drained


class Ingestor:
    """Decodes and commits batches into one store (used from one thread at a time)."""

    def __init__(self, store: Store, window: Window | None = None) -> None:
        self.store = store
        self.window = window or Window()
        self.stats = Stats()
        self._logged: dict[str, float] = {}

    def commit(
        self, messages: list[tuple[str, bytes, str]], also: Callable[[], None] = lambda: None
    ) -> list[Rollup]:
        """Count ``(topic host, payload, content type)`` messages, and run ``also`` in the same
        transaction; returns the new rollups."""
        now = time.time_ns()
        prepared = []
        for host, payload, ctype in messages:
            try:
                cols = decode(payload, ctype, host, now, self.window)
            except Junk as exc:
                self.skip(exc.kind, exc.reason, host)
                continue
            if len(cols):
                prepared.append(prepare(cols))
        runs = [r for p in prepared for r in p.runs]
        out: list[Rollup] = []
        start = time.perf_counter()
        added = self.store.ingest(runs, lambda claimed: self._build(prepared, claimed, out), also)
        self._account(prepared, added, time.perf_counter() - start)
        return out

    def _build(
        self, prepared: list[Prepared], claimed: set[Run], out: list[Rollup]
    ) -> list[Rollup]:
        out.clear()  # a retried transaction builds again
        taken: set[Run] = set()  # a run claimed once counts once, for its first occurrence
        for p in prepared:
            first = [r in claimed and r not in taken for r in p.runs]
            taken.update(p.runs)
            ok = np.array([*first, False], np.bool_)
            mask = ok[p.run_of]  # run -1 indexes the trailing False
            if mask.any():
                out.append(roll_up(p.cols.take(mask)))
        return out

    def _account(self, prepared: list[Prepared], added: int, seconds: float) -> None:
        s = self.stats
        total = sum(len(p.cols) for p in prepared)
        s.events += added
        s.duplicates += total - added
        s.batches += len(prepared)
        if prepared:
            s.newest_ts = max(s.newest_ts, *(int(p.cols.ts.max()) for p in prepared))
        if len(s.store_seconds) < 4096:  # bounded; the metrics scrape drains it
            s.store_seconds.append(seconds)

    def skip(self, kind: str, reason: str, host: str) -> None:
        """Count a skipped payload; log each kind at most once per 10 s."""
        self.stats.junk[kind] += 1
        now = time.monotonic()
        if now - self._logged.get(kind, -1e9) >= 10.0:
            self._logged[kind] = now
            log.warning("payload-skipped", kind=kind, host=host, reason=reason,
                        total=self.stats.junk[kind])  # fmt: skip
