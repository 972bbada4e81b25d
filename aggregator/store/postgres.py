"""The shared store: PostgreSQL (``--store postgresql://...``), for several aggregators at once.

Claims go through an exclusion constraint on ``seen`` (btree_gist: equal host and epoch,
overlapping ranges), so ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` tells which runs this
transaction counts; a concurrent claim of the same run waits for the first to commit, then
conflicts. Rollup upserts touch only their own rows, so instances do not serialize otherwise.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from aggregator.store.base import Run, Store
from aggregator.store.schema import Dialect

__all__ = ["POSTGRES", "PostgresStore"]

POSTGRES = Dialect(
    "postgresql",
    "%s",
    "LEAST",
    "GREATEST",
    "",
    ", EXCLUDE USING gist (host WITH =, epoch WITH =, int8range(lo, hi, '[]') WITH &&)",
    preamble="CREATE EXTENSION IF NOT EXISTS btree_gist;",
)


_KEY_TYPES = ["text", "bigint", "bigint", "smallint", "integer", "text", "bigint"]
_ROW_TYPES = [*_KEY_TYPES, "bigint", "bigint", "bigint", "text"]  # events, first, last, vm_name
_VALUE_TYPES = [*_KEY_TYPES, "bigint", "bigint"]  # value, n


def _bulk(statement: str, types: list[str]) -> str:
    """An upsert statement (schema.py's) fed from one array per column (``unnest``): one
    statement per level and commit instead of one per row."""
    head, _, tail = statement.partition(" VALUES ")
    arrays = ", ".join(f"%s::{t}[]" for t in types)
    return f"{head} SELECT * FROM unnest({arrays}) {tail[tail.index('ON CONFLICT') :]}"


class PostgresStore(Store):
    def __init__(self, url: str, *, connect_timeout: int = 5) -> None:
        self._url = url
        self._timeout = connect_timeout
        super().__init__(self._connect(), POSTGRES, (psycopg.Error,))

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self._url, autocommit=False, connect_timeout=self._timeout)

    def _write_rows(self, lvl: str, rows: list[tuple[Any, ...]]) -> None:
        # merged by the caller: one statement may not update a row twice, and it does not
        if rows:
            self._con.execute(_bulk(self._rows[lvl], _ROW_TYPES), _columns(rows))

    def _write_values(self, lvl: str, values: list[tuple[Any, ...]]) -> None:
        if values:
            stmt = _bulk(self._values[lvl], _VALUE_TYPES)
            self._con.execute(stmt, _columns(values))

    def _lost(self) -> bool:
        return bool(self._con.closed or self._con.broken)

    def _ensure(self) -> None:
        if self._lost():
            self._con = self._connect()  # raises psycopg.OperationalError while it is down

    def create(self) -> None:
        # two instances starting at once: one creates the schema, the other waits for it
        with self._guard("create schema"), self.transaction():
            self._con.execute("SELECT pg_advisory_xact_lock(7150)")  # 7150: any fixed number
        super().create()

    def _claim(self, runs: list[Run]) -> set[Run]:
        if not runs:
            return set()
        now = time.time_ns()
        cur = self._con.execute(
            "INSERT INTO seen (host, epoch, lo, hi, at) SELECT h, e, l, i, %s FROM "
            "unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[]) AS r(h, e, l, i) "
            "ON CONFLICT DO NOTHING RETURNING host, epoch, lo, hi",
            (
                now,
                [r[0] for r in runs],
                [r[1] for r in runs],
                [r[2] for r in runs],
                [r[3] for r in runs],
            ),
        )
        return {(h, e, int(lo), int(hi)) for h, e, lo, hi in cur.fetchall()}


def _columns(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(c) for c in zip(*rows, strict=True)]
