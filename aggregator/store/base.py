"""The store: rollups, seen ranges and host state in one SQL database (SQLite or PostgreSQL).

Synchronous, one connection, used from one thread at a time (the caller runs it in an executor).
Foreign errors become :class:`StoreError` here and nowhere else (:meth:`Store._guard`).

Exactly-once: a batch's sequence numbers, as runs of consecutive numbers, are *claimed* in the
``seen`` table in the same transaction that adds its events to the rollups. A run overlapping a
claimed range is a duplicate: SQLite (one writer) checks before it inserts; PostgreSQL lets an
exclusion constraint decide, so two aggregators claiming the same run serialize on it and only
one counts it.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from aggregator.errors import StoreError
from aggregator.rollup import TOP_VALUES, Rollup, merge
from aggregator.store.schema import (
    KEY,
    LEVELS,
    VALUE_LEVELS,
    Dialect,
    ddl,
    upsert_rows,
    upsert_values,
)

__all__ = ["Run", "Store"]

Run = tuple[str, str, int, int]  # host, epoch, first seq, last seq
COMPACT_AGE_S = 60  # ranges are merged only when older: no transaction in flight can hold them


class Store(ABC):
    """One database connection and every statement the aggregator runs."""

    def __init__(self, con: Any, dialect: Dialect, errors: tuple[type[BaseException], ...]):
        self._con = con
        self.dialect = dialect
        self._errors: tuple[type[BaseException], ...] = (*errors, OSError)
        self._rows = {lvl: dialect.sql(upsert_rows(lvl)) for lvl in LEVELS}
        self._values = {lvl: dialect.sql(upsert_values(lvl)) for lvl in VALUE_LEVELS}

    @contextmanager
    def _guard(self, op: str) -> Iterator[None]:
        try:
            yield
        except self._errors as exc:
            raise StoreError(op, str(exc).strip() or type(exc).__name__) from exc

    def _x(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._con.execute(self.dialect.sql(sql), params)

    def create(self) -> None:
        with self._guard("create schema"), self.transaction():
            for stmt in ddl(self.dialect):
                self._con.execute(stmt)

    def close(self) -> None:
        with self._guard("close"):
            self._con.close()

    def _ensure(self) -> None:  # noqa: B027 (a no-op unless the dialect overrides it)
        """Reconnect if the connection was lost (dialects override)."""

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN ... COMMIT, rolled back on any error."""
        self._ensure()
        self._begin()
        try:
            yield
            self._con.commit()  # may fail too (a full disk): then roll back like any error
        except BaseException:
            with suppress(*self._errors):  # a lost connection cannot roll back: it is gone
                self._con.rollback()
            raise

    def _begin(self) -> None:  # noqa: B027 (a no-op unless the dialect overrides it)
        """Start a write transaction (dialects override)."""

    # -- ingest ------------------------------------------------------------------------------

    def ingest(
        self,
        runs: list[Run],
        build: Callable[[set[Run]], list[Rollup]],
        also: Callable[[], None] = lambda: None,
    ) -> int:
        """Claim ``runs`` and store the rollups ``build`` makes from the claimed ones, and run
        ``also`` (births, drops), in one transaction; returns the events added."""
        with self._guard("ingest"), self.transaction():
            also()
            claimed = self._claim(runs)
            rollups = build(claimed)
            return self._upsert(rollups)

    @abstractmethod
    def _claim(self, runs: list[Run]) -> set[Run]:
        """Record ``runs`` as counted and return those not counted before (in the transaction:
        each dialect has its own way to make the claim atomic across instances)."""

    def _upsert(self, rollups: list[Rollup]) -> int:
        """Every level's rows, merged over the group commit first (each level from the one
        below), so each row is written once per commit."""
        if not rollups:
            return 0
        for lvl, width in LEVELS.items():
            rows, values = merge(rollups, width)
            self._write_rows(lvl, rows)
            if lvl in VALUE_LEVELS:
                self._write_values(lvl, values)
            rollups = [Rollup(rows, values)]  # the next level folds these (fewer) rows
        return sum(x[7] for x in rollups[0].rows)

    def import_rows(self, lvl: str, rows: list[tuple[Any, ...]]) -> None:
        """Add rollup rows with distinct keys to one level (no claims): a backfill, the
        benchmark."""
        with self._guard("import"), self.transaction():
            self._write_rows(lvl, rows)

    def _write_rows(self, lvl: str, rows: list[tuple[Any, ...]]) -> None:
        """Upsert rollup rows (a key may repeat: each repeat adds up)."""
        self._con.cursor().executemany(self._rows[lvl], rows)

    def _write_values(self, lvl: str, values: list[tuple[Any, ...]]) -> None:
        self._con.cursor().executemany(self._values[lvl], values)

    # -- maintenance -------------------------------------------------------------------------

    def maintain(self, now_s: int, retention: dict[str, int], max_ranges: int) -> None:
        """Delete buckets past each level's retention, bound the top values, compact ranges."""
        with self._guard("maintain"), self.transaction():
            for lvl, keep in retention.items():
                self._x(f"DELETE FROM r_{lvl} WHERE bucket < ?", (now_s - keep,))
                if lvl in VALUE_LEVELS:
                    self._x(f"DELETE FROM v_{lvl} WHERE bucket < ?", (now_s - keep,))
                    self._prune_values(lvl, now_s - 2 * LEVELS[lvl] - 120)
            self._compact(now_s, max_ranges)

    def _prune_values(self, lvl: str, since: int) -> None:
        cols = f"{KEY}, bucket, value"
        self._x(
            f"DELETE FROM v_{lvl} WHERE ({cols}) IN (SELECT {cols} FROM (SELECT {cols}, "
            f"ROW_NUMBER() OVER (PARTITION BY {KEY}, bucket ORDER BY n DESC, value) AS rk "
            f"FROM v_{lvl} WHERE bucket >= ?) AS ranked WHERE rk > ?)",
            (since, TOP_VALUES),
        )

    def _compact(self, now_s: int, max_ranges: int) -> None:
        """Merge neighbouring ranges claimed long enough ago; beyond ``max_ranges`` per stream,
        give up on the oldest holes (counted as ``abandoned``)."""
        old = (now_s - COMPACT_AGE_S) * 1_000_000_000
        streams = self._x(
            "SELECT host, epoch, COUNT(*) FROM seen WHERE at < ? GROUP BY host, epoch HAVING "
            "COUNT(*) > 1",
            (old,),
        ).fetchall()
        for host, epoch, _ in streams:
            ranges = self._x(
                "SELECT lo, hi FROM seen WHERE host = ? AND epoch = ? AND at < ? ORDER BY lo",
                (host, epoch, old),
            ).fetchall()
            merged, abandoned = _merge(ranges, max_ranges)
            if len(merged) == len(ranges):
                continue
            self._x("DELETE FROM seen WHERE host = ? AND epoch = ? AND at < ?", (host, epoch, old))
            for lo, hi in merged:
                self._x(
                    "INSERT INTO seen (host, epoch, lo, hi, at) VALUES (?, ?, ?, ?, ?)",
                    (host, epoch, lo, hi, old - 1),
                )
            if abandoned:
                self._touch_host(host)
                self._x(
                    "UPDATE hosts SET abandoned = abandoned + ? WHERE host = ?", (abandoned, host)
                )

    # -- hosts -------------------------------------------------------------------------------

    def _touch_host(self, host: str) -> None:
        self._x("INSERT INTO hosts (host) VALUES (?) ON CONFLICT (host) DO NOTHING", (host,))

    def birth(self, host: str, doc: dict[str, Any]) -> None:
        """A birth or a will on the host's status topic (inside :meth:`ingest`'s transaction)."""
        labels = doc.get("labels")
        text = json.dumps(labels, sort_keys=True) if isinstance(labels, dict) else ""
        self._touch_host(host)
        self._x(
            "UPDATE hosts SET online = ?, epoch = CASE WHEN ? = '' THEN epoch ELSE ? END, "
            "address = CASE WHEN ? = '' THEN address ELSE ? END, "
            "labels = CASE WHEN ? = '' THEN labels ELSE ? END, last_seen = ? "
            "WHERE host = ?",
            (
                bool(doc.get("online")), str(doc.get("epoch") or ""),
                str(doc.get("epoch") or ""), str(doc.get("address") or ""),
                str(doc.get("address") or ""), text, text, time.time_ns(), host,
            ),
        )  # fmt: skip

    def drops(self, host: str, events: int) -> None:
        """Events a host announced as dropped (inside :meth:`ingest`'s transaction)."""
        self._touch_host(host)
        self._x("UPDATE hosts SET drops = drops + ? WHERE host = ?", (events, host))

    # -- reading -----------------------------------------------------------------------------

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read; once more on a fresh connection if the old one was found lost."""
        try:
            return self._fetch(sql, params)
        except StoreError:
            if not self._lost():
                raise
            return self._fetch(sql, params)

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._guard("query"):
            self._ensure()
            rows: list[tuple[Any, ...]] = self._x(sql, params).fetchall()
            self._con.rollback()  # end the read transaction: the next read sees new commits
            return rows

    def _lost(self) -> bool:
        """True if the connection is gone (dialects override)."""
        return False

    def gaps(self, grace_ns: int) -> dict[str, int]:
        """Sequence numbers missing per host: holes between ranges older than ``grace_ns``."""
        cutoff = time.time_ns() - grace_ns
        rows = self.fetch(
            "SELECT host, SUM(lo - prev - 1) FROM (SELECT host, lo, at, LAG(hi) OVER "
            "(PARTITION BY host, epoch ORDER BY lo) AS prev FROM seen) AS s "
            "WHERE prev IS NOT NULL AND at < ? GROUP BY host",
            (cutoff,),
        )
        return {h: int(n) for h, n in rows}


def _merge(ranges: list[tuple[int, int]], limit: int) -> tuple[list[tuple[int, int]], int]:
    """Adjacent ranges merged; then the oldest merged across their holes until ``limit``."""
    out: list[list[int]] = []
    for lo, hi in ranges:
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    abandoned = 0
    while len(out) > limit:
        lo, hi = out.pop(0)
        abandoned += out[0][0] - hi - 1
        out[0][0] = lo
    return [(lo, hi) for lo, hi in out], abandoned
