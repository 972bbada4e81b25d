"""The store's tables and statements, written once for SQLite and PostgreSQL.

Statements use ``?`` placeholders and ``{least}`` / ``{greatest}``; a :class:`Dialect` renders
them (PostgreSQL: ``%s``, ``LEAST`` / ``GREATEST``). Tables:

- ``r_s``, ``r_m``, ``r_t``, ``r_h``: rollups per (host, vm, vcpu, dir, port, hook) and bucket
  of 1 s, 1 min, 10 min, 1 h (``bucket``: its first second since the Unix epoch). A group commit
  updates every level in its transaction (1 s folded into the coarser buckets as it is written),
  so each level is exact on its own; retention deletes old buckets per level.
  The key leads with the bucket: SQLite keeps these tables clustered by it, so a time window
  is one range scan and new rows land at the end of the B-tree.
- ``v_m``, ``v_h``: the most frequent values per rollup row and bucket (bounded, rollup.py).
- ``seen``: the (host, epoch) sequence ranges counted, disjoint; compacted by merging neighbours.
- ``hosts``: liveness from births and wills, announced drops, sequence numbers given up on.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KEY", "LEVELS", "VALUE_LEVELS", "Dialect", "ddl"]

# level name -> bucket width in seconds
LEVELS = {"s": 1, "m": 60, "t": 600, "h": 3600}
VALUE_LEVELS = ("m", "h")  # the most frequent values are kept per minute and per hour
KEY = "host, vm, vcpu, dir, port, hook"

_TABLES = """
CREATE TABLE IF NOT EXISTS r_{lvl} (
  host TEXT NOT NULL, vm BIGINT NOT NULL, vcpu BIGINT NOT NULL, dir SMALLINT NOT NULL,
  port INTEGER NOT NULL, hook TEXT NOT NULL, bucket BIGINT NOT NULL,
  events BIGINT NOT NULL, first_ts BIGINT NOT NULL, last_ts BIGINT NOT NULL, vm_name TEXT NOT NULL,
  PRIMARY KEY (bucket, host, vm, vcpu, dir, port, hook)){without_rowid};
"""
_VALUES = """
CREATE TABLE IF NOT EXISTS v_{lvl} (
  host TEXT NOT NULL, vm BIGINT NOT NULL, vcpu BIGINT NOT NULL, dir SMALLINT NOT NULL,
  port INTEGER NOT NULL, hook TEXT NOT NULL, bucket BIGINT NOT NULL,
  value BIGINT NOT NULL, n BIGINT NOT NULL,
  PRIMARY KEY (bucket, host, vm, vcpu, dir, port, hook, value)){without_rowid};
"""
_COMMON = """
CREATE TABLE IF NOT EXISTS seen (
  host TEXT NOT NULL, epoch TEXT NOT NULL, lo BIGINT NOT NULL, hi BIGINT NOT NULL,
  at BIGINT NOT NULL, PRIMARY KEY (host, epoch, lo){seen_extra});
CREATE TABLE IF NOT EXISTS hosts (
  host TEXT PRIMARY KEY, online BOOLEAN NOT NULL DEFAULT FALSE, epoch TEXT NOT NULL DEFAULT '',
  address TEXT NOT NULL DEFAULT '', labels TEXT NOT NULL DEFAULT '{{}}',
  last_seen BIGINT NOT NULL DEFAULT 0, drops BIGINT NOT NULL DEFAULT 0,
  abandoned BIGINT NOT NULL DEFAULT 0);
"""


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one database spells what differs."""

    name: str
    param: str  # the placeholder
    least: str
    greatest: str
    without_rowid: str  # SQLite's clustered tables
    seen_extra: str  # PostgreSQL: an exclusion constraint makes overlapping ranges conflict
    preamble: str = ""

    def sql(self, text: str) -> str:
        out = text.replace("{least}", self.least).replace("{greatest}", self.greatest)
        return out.replace("?", self.param)


def ddl(d: Dialect) -> list[str]:
    """Every statement creating the schema (idempotent)."""
    text = d.preamble + "".join(
        _TABLES.format(lvl=lvl, without_rowid=d.without_rowid) for lvl in LEVELS
    )
    text += "".join(_VALUES.format(lvl=lvl, without_rowid=d.without_rowid) for lvl in VALUE_LEVELS)
    text += _COMMON.format(seen_extra=d.seen_extra)
    return [s.strip() for s in text.split(";") if s.strip()]


def upsert_rows(lvl: str) -> str:
    return (
        f"INSERT INTO r_{lvl} ({KEY}, bucket, events, first_ts, last_ts, vm_name) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (bucket, host, vm, vcpu, dir, port, hook) DO UPDATE SET "
        f"events = r_{lvl}.events + excluded.events, "
        f"first_ts = {{least}}(r_{lvl}.first_ts, excluded.first_ts), "
        f"last_ts = {{greatest}}(r_{lvl}.last_ts, excluded.last_ts), vm_name = excluded.vm_name"
    )


def upsert_values(lvl: str) -> str:
    return (
        f"INSERT INTO v_{lvl} ({KEY}, bucket, value, n) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (bucket, host, vm, vcpu, dir, port, hook, value) DO UPDATE SET "
        f"n = v_{lvl}.n + excluded.n"
    )
