"""Hooks on disk, so an agent restart restores them exactly as they were set.

``<state_dir>/hooks.db`` (SQLite, write-ahead log, ``synchronous=FULL``) holds one row per hook:
its id, its full ``HookSpec`` (serialized protobuf), its enabled flag, and ``seq``, which orders
the hooks as they were last set (so a restart keeps "newest first"). One change is one row
written in one transaction: it costs O(log hooks), not a rewrite of every hook, and one fsync
(of the log; a rollback journal needs three, which 125 hollow agents sharing a process and a
disk pay in series in ``bench/fleet.py``). It is either on disk or raised as
:class:`~agent.errors.StateError` (``StateFull`` when the disk is full).
The hook service writes the store *before* it changes the table, so a hook change is persisted
or refused, never half of each.

Older agents kept ``hooks.json`` (format 1: each hook's command text; format 2: each spec in
protobuf's JSON mapping). When the database is created, such a file is imported into it and
renamed ``hooks.json.imported``. A database that cannot be read is set aside as
``hooks.db.corrupt`` (logged) and the agent starts without saved hooks; so is a row whose spec
does not parse.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from agent.errors import HookError, HookSyntaxError, StateError, StateFull
from agent.hooks.lang import parse
from agent.wire import hooks_pb2

__all__ = ["HookStore", "StoredHook"]

log = structlog.get_logger("ioind.state")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hooks (
    id TEXT PRIMARY KEY,
    spec BLOB NOT NULL,      -- ioin.v1.HookSpec, serialized
    enabled INTEGER NOT NULL,
    seq INTEGER NOT NULL     -- order of the last set: restored oldest first
)
"""
_PUT = """
INSERT INTO hooks (id, spec, enabled, seq)
VALUES (?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM hooks))
ON CONFLICT (id) DO UPDATE SET
    seq = CASE WHEN spec = excluded.spec THEN seq ELSE excluded.seq END,
    spec = excluded.spec,
    enabled = excluded.enabled
"""


@dataclass(frozen=True, slots=True)
class StoredHook:
    spec: hooks_pb2.HookSpec
    enabled: bool


class HookStore:
    """The hooks of ``state_dir``; opened on first use."""

    def __init__(self, state_dir: str | Path) -> None:
        self.path = Path(state_dir) / "hooks.db"
        self.legacy = Path(state_dir) / "hooks.json"
        self._db: sqlite3.Connection | None = None

    def load(self) -> list[StoredHook]:
        """Every saved hook, oldest set first (unreadable rows logged and skipped)."""
        try:
            query = "SELECT id, spec, enabled FROM hooks ORDER BY seq"
            rows = self._conn().execute(query).fetchall()
        except sqlite3.OperationalError as exc:  # cannot open or read: the disk, not the file
            raise _state_error(self.path, exc) from None
        except sqlite3.DatabaseError as exc:  # not a database (any more)
            return self._set_aside(exc)
        hooks = []
        for hook_id, blob, enabled in rows:
            try:
                hooks.append(StoredHook(hooks_pb2.HookSpec.FromString(blob), bool(enabled)))
            except DecodeError as exc:
                log.error("hook-not-restored", path=str(self.path), hook_id=hook_id, error=str(exc))
        return hooks

    def put(self, hook: StoredHook) -> None:
        """Write one hook (create or replace); raises StateError if it is not on disk."""
        self.put_many([hook])

    def put_many(self, hooks: list[StoredHook]) -> None:
        """Write hooks in one transaction (all or none), in order."""
        rows = [
            (h.spec.id, h.spec.SerializeToString(deterministic=True), int(h.enabled)) for h in hooks
        ]
        self._write(_PUT, *rows)

    def delete(self, hook_id: str) -> None:
        self._write("DELETE FROM hooks WHERE id = ?", (hook_id,))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _write(self, sql: str, *rows: tuple[Any, ...]) -> None:
        try:
            db = self._conn()
            with db:  # one transaction: committed, or rolled back and raised
                for row in rows:  # (the seq subquery sees each earlier row: not executemany)
                    db.execute(sql, row)
        except (sqlite3.Error, OSError) as exc:
            raise _state_error(self.path, exc) from None

    def _conn(self) -> sqlite3.Connection:
        """The open database (sqlite3 and OS errors propagate: callers translate them)."""
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not self.path.exists()
            db = sqlite3.connect(self.path, check_same_thread=False)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.execute(_SCHEMA)
            except sqlite3.Error:
                db.close()
                raise
            self._db = db
            if fresh and self.legacy.exists():
                self._import_legacy()
        return self._db

    def _set_aside(self, exc: Exception) -> list[StoredHook]:
        aside = self.path.with_name(self.path.name + ".corrupt")
        log.error("state-unreadable", path=str(self.path), error=str(exc), moved_to=str(aside))
        self.close()
        self.path.replace(aside)
        for suffix in ("-wal", "-shm"):  # the log belongs to the file set aside, not the next
            log_file = self.path.with_name(self.path.name + suffix)
            if log_file.exists():
                log_file.replace(aside.with_name(aside.name + suffix))
        return []

    def _import_legacy(self) -> None:
        """hooks.json (format 1 or 2) into the database, once; the file is then renamed."""
        try:
            raw = json.loads(self.legacy.read_text())
            entries = raw["hooks"]
            old = raw.get("format", 1) == 1
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.error("state-unreadable", path=str(self.legacy), error=str(exc))
            return
        for entry in entries if isinstance(entries, list) else []:
            try:
                self.put(_from_v1(entry) if old else _from_v2(entry))
            except (HookError, ValueError, KeyError, TypeError, json_format.ParseError) as exc:
                log.error("hook-not-restored", path=str(self.legacy), entry=entry, error=str(exc))
        self.legacy.replace(self.legacy.with_name(self.legacy.name + ".imported"))


def _state_error(path: Path, exc: Exception) -> StateError:
    full = isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", 0) & 0xFF == 13
    full = full or getattr(exc, "errno", 0) == 28  # SQLITE_FULL (sqlite3.h), ENOSPC
    return (StateFull if full else StateError)(str(path), str(exc))


def _from_v2(entry: dict[str, Any]) -> StoredHook:
    spec = json_format.ParseDict(entry["spec"], hooks_pb2.HookSpec())
    return StoredHook(spec, _flag(entry["enabled"]))


def _from_v1(entry: dict[str, Any]) -> StoredHook:
    """A format-1 entry: the command text only (a hook set as a bare spec had none)."""
    command = entry["command"]
    if not isinstance(command, str) or not command.strip():
        raise HookSyntaxError("format 1 entry without a command (set as a bare spec)", "command")
    return StoredHook(parse(command, hook_id=entry["id"] or None), bool(entry["enabled"]))


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"'enabled' is {type(value).__name__}, not a boolean")
    return value
