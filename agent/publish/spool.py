"""The durable spool: event batches on local disk between the pipeline and the broker.

A batch is written here before it is published and deleted only after the broker's PUBACK, so a
broker outage or an agent crash (SIGKILL included) loses nothing that reached the spool. SQLite in
WAL mode with ``synchronous=NORMAL``: a commit is a write into the WAL (no fsync), which survives a
process crash; an OS crash may lose the last commits. Chosen over segment files by measurement
(bench/bench_pipeline.py: one insert + delete per batch of ~1000 events costs well under 1 % of
the pipeline's time, and SQLite gives crash-consistent deletes for free).

Bounded by ``max_bytes`` of payload: when a new batch would exceed it, the *oldest* batches are
dropped and counted (``dropped_batches`` / ``dropped_events``) — the freshest data is the most
useful after a long outage, and the gaps are visible to consumers by sequence number.

A full disk (SQLite's ``database or disk is full``, ENOSPC underneath) is not fatal. ``put`` frees
the ballast of :mod:`agent.publish.reserve` (so the WAL can be checkpointed), lowers the cap to
nine tenths of what the spool holds, drops the oldest batches down to it (counted as above, so
the agent's drops notice announces them) and retries the insert once; if that fails too, the new
batch itself is dropped and counted. From then on the cap keeps the spool within the disk: the
drops come before the inserts, which reuse the freed pages. Every ``RESTORE_EVERY`` puts the
spool tries to make its ballast again; once it can, the configured cap is back. ``disk_full``
counts the incidents. An ack whose delete fails is remembered (at most ``MAX_PENDING_DELETES``
ids, beyond that the oldest are forgotten: their batches are sent again after a restart, which
at-least-once delivery allows) and retried with the next write. A spool that cannot even be
opened (a restart on a full disk) falls back to memory, capped at ``MEMORY_FALLBACK_BYTES``,
instead of taking the agent down: ``on_disk`` says which one is in use.

Reading is by a cursor over ids: :meth:`take` returns batches after the cursor without deleting
them; :meth:`rewind` (on reconnect) moves the cursor back to the oldest unacknowledged batch.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import structlog

from agent.publish.reserve import Reserve, sizes

__all__ = ["MAX_PENDING_DELETES", "MEMORY_FALLBACK_BYTES", "RESTORE_EVERY", "Spool", "SpooledBatch"]

log = structlog.get_logger("ioind.spool")

MAX_PENDING_DELETES = 4096
MEMORY_FALLBACK_BYTES = 16 * 2**20
RESTORE_EVERY = 256  # puts between attempts to retake the ballast after a full disk
# SQLite primary result codes (sqlite3.h) that mean the storage, not the statement, failed.
_STORAGE_ERRORS = (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN)


def _storage_failed(exc: sqlite3.Error) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _STORAGE_ERRORS


_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: the read cursor relies on it
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    content_type TEXT NOT NULL,
    events INTEGER NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    id: int
    topic: str
    payload: bytes
    content_type: str
    events: int


class Spool:
    """``put`` / ``take`` / ``ack`` over a SQLite file (``":memory:"`` for a non-durable spool)."""

    def __init__(self, path: str | Path, max_bytes: int) -> None:
        self.max_bytes = self.configured_bytes = max_bytes
        self.on_disk = str(path) != ":memory:"
        self._reserve: Reserve | None = None
        try:
            self._db = self._open_disk(Path(path)) if self.on_disk else self._open(":memory:")
        except sqlite3.Error as exc:
            if not (self.on_disk and _storage_failed(exc)):
                raise
            log.error("spool-on-memory", path=str(path), error=str(exc))
            self.on_disk, self.max_bytes = False, min(max_bytes, MEMORY_FALLBACK_BYTES)
            self._db = self._open(":memory:")
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(events), 0), COALESCE(SUM(LENGTH(payload)), 0) "
            "FROM batches"
        ).fetchone()
        self.batches, self.events, self.bytes = int(row[0]), int(row[1]), int(row[2])
        self.recovered_batches = self.batches  # found on disk at start (a previous run's)
        self._cursor = 0
        self._pending_deletes: dict[int, None] = {}  # acked, delete failed: an ordered set
        self._puts = 0
        self.dropped_batches = 0
        self.dropped_events = 0
        self.disk_full = 0

    def _open_disk(self, path: Path) -> sqlite3.Connection:
        path.parent.mkdir(parents=True, exist_ok=True)
        pages, ballast = sizes(path.parent)
        self._reserve = Reserve(path.with_name(path.name + ".reserve"), ballast)
        self._reserve.release()  # a restart on a full disk opens with the ballast's room
        db = self._open(path)
        db.execute(f"PRAGMA wal_autocheckpoint={pages}")
        self._reserve.restore()
        return db

    @staticmethod
    def _open(path: str | Path) -> sqlite3.Connection:
        db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
        except sqlite3.Error:
            db.close()
            raise
        return db

    def put(self, topic: str, payload: bytes, content_type: str, events: int) -> int:
        """Store a batch (dropping the oldest if over the cap or the disk is full); returns its
        id, or 0 if the disk was full even after dropping (the batch is dropped and counted)."""
        row = (topic, payload, content_type, events)
        try:
            self._retry_deletes()
            self._maybe_restore()
            if self.bytes + len(payload) > self.max_bytes:
                self._drop_oldest(self.bytes + len(payload) - self.max_bytes)
            return self._insert(row)
        except sqlite3.OperationalError as exc:
            if not _storage_failed(exc):
                raise
            return self._insert_when_full(row, str(exc))

    def _insert(self, row: tuple[str, bytes, str, int]) -> int:
        cur = self._db.execute(
            "INSERT INTO batches (topic, payload, content_type, events) VALUES (?, ?, ?, ?)", row
        )
        self.batches += 1
        self.events += row[3]
        self.bytes += len(row[1])
        assert cur.lastrowid is not None
        return cur.lastrowid

    def _insert_when_full(self, row: tuple[str, bytes, str, int], error: str) -> int:
        """Disk full: free the ballast, checkpoint, lower the cap, drop the oldest, retry once."""
        self.disk_full += 1
        self.max_bytes = max(len(row[1]), self.bytes * 9 // 10)
        log.warning("spool-disk-full", error=error, batches=self.batches, cap=self.max_bytes)
        try:
            if self._reserve is not None:
                self._reserve.release()
            self._db.execute("PRAGMA wal_checkpoint(RESTART)")
            self._drop_oldest(self.bytes + len(row[1]) - self.max_bytes)
            return self._insert(row)
        except sqlite3.OperationalError as exc:
            if not _storage_failed(exc):
                raise
        self.dropped_batches += 1
        self.dropped_events += row[3]
        return 0

    def _maybe_restore(self) -> None:
        """After a full disk, now and then: retake the ballast; if it fits, restore the cap."""
        if self.max_bytes >= self.configured_bytes or self._reserve is None:
            return
        self._puts += 1
        if self._puts % RESTORE_EVERY == 0 and self._reserve.restore():
            self.max_bytes = self.configured_bytes
            log.info("spool-disk-space-back", cap=self.max_bytes)

    def take(self, limit: int) -> list[SpooledBatch]:
        """Up to ``limit`` batches after the cursor, oldest first; advances the cursor."""
        rows = self._db.execute(
            "SELECT id, topic, payload, content_type, events FROM batches WHERE id > ? "
            "ORDER BY id LIMIT ?",
            (self._cursor, limit),
        ).fetchall()
        if rows:
            self._cursor = rows[-1][0]
        return [SpooledBatch(*r) for r in rows if r[0] not in self._pending_deletes]

    def ack(self, batch_id: int, events: int, size: int) -> None:
        """The broker has it: delete it (a batch already dropped for space is ignored)."""
        try:
            cur = self._db.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
        except sqlite3.OperationalError as exc:
            if not _storage_failed(exc):
                raise
            self._defer_delete(batch_id, events, size)
            return
        if cur.rowcount:
            self.batches -= 1
            self.events -= events
            self.bytes -= size

    def _defer_delete(self, batch_id: int, events: int, size: int) -> None:
        """Count the batch as gone now, delete its row with a later write."""
        if batch_id in self._pending_deletes:
            return
        self._pending_deletes[batch_id] = None
        if len(self._pending_deletes) > MAX_PENDING_DELETES:
            del self._pending_deletes[next(iter(self._pending_deletes))]
        self.batches -= 1
        self.events -= events
        self.bytes -= size

    def _retry_deletes(self) -> None:
        if not self._pending_deletes:
            return
        ids = [(i,) for i in self._pending_deletes]
        self._db.executemany("DELETE FROM batches WHERE id = ?", ids)
        self._pending_deletes.clear()

    def rewind(self) -> None:
        """Read again from the oldest unacknowledged batch (after a lost connection)."""
        self._cursor = 0

    def close(self) -> None:
        self._db.close()
        if self._reserve is not None:
            self._reserve.release()  # the ballast is only held while the spool is open

    def _drop_oldest(self, need: int) -> None:
        """Delete the oldest batches until ``need`` bytes are freed; count them as dropped."""
        freed, after = 0, 0
        while freed < need:
            rows = self._db.execute(
                "SELECT id, events, LENGTH(payload) FROM batches WHERE id > ? ORDER BY id LIMIT 64",
                (after,),
            ).fetchall()
            if not rows:
                return
            gone = []
            for batch_id, events, size in rows:
                after = batch_id
                gone.append((batch_id, events, size))
                freed += 0 if batch_id in self._pending_deletes else size
                if freed >= need:
                    break
            self._db.executemany("DELETE FROM batches WHERE id = ?", [(g[0],) for g in gone])
            for batch_id, events, size in gone:
                if batch_id in self._pending_deletes:
                    del self._pending_deletes[batch_id]
                    continue  # acked already: counted as gone then
                self.batches -= 1
                self.events -= events
                self.bytes -= size
                self.dropped_batches += 1
                self.dropped_events += events
