"""Hooks on disk, so an agent restart restores them exactly as they were set.

``<state_dir>/hooks.json`` (format 2) holds every hook's full ``HookSpec`` (protobuf's JSON
mapping, field names as in ``hooks.proto``) and its enabled flag; it is rewritten atomically
(write to a temporary file, fsync, rename) after every change::

    {"format": 2, "hooks": [{"enabled": true, "spec": {"id": "in-3f8-...", "port": 1016, ...}}]}

Format 1 (no ``format`` key: ``{"hooks": [{"id", "command", "enabled"}]}``, the command text
only) still loads: each command is parsed again, as format-1 agents did at start. The next save
writes format 2. An entry that cannot be read is logged and skipped; a file that cannot be read
at all is set aside as ``hooks.corrupt``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from google.protobuf import json_format

from agent.errors import HookError, HookSyntaxError
from agent.hooks.lang import parse
from agent.wire import hooks_pb2

__all__ = ["FORMAT", "HookStore", "StoredHook"]

log = structlog.get_logger("ioind.state")

FORMAT = 2


@dataclass(frozen=True, slots=True)
class StoredHook:
    spec: hooks_pb2.HookSpec
    enabled: bool


class HookStore:
    def __init__(self, state_dir: str | Path) -> None:
        self.path = Path(state_dir) / "hooks.json"

    def load(self) -> list[StoredHook]:
        """The saved hooks; a missing file is empty, a corrupt one is logged and set aside."""
        try:
            raw = json.loads(self.path.read_text())
            entries = raw["hooks"]
            old = raw.get("format", 1) == 1
            if not isinstance(entries, list):
                raise TypeError("'hooks' is not an array")
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            aside = self.path.with_suffix(".corrupt")
            log.error("state-unreadable", path=str(self.path), error=str(exc), moved_to=str(aside))
            self.path.replace(aside)
            return []
        hooks = []
        for entry in entries:
            try:
                hooks.append(_from_v1(entry) if old else _from_v2(entry))
            except (HookError, ValueError, KeyError, TypeError, json_format.ParseError) as exc:
                log.error("hook-not-restored", path=str(self.path), entry=entry, error=str(exc))
        return hooks

    def save(self, hooks: list[StoredHook]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        body = {"format": FORMAT, "hooks": [_to_v2(h) for h in hooks]}
        with tmp.open("w") as f:
            json.dump(body, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)


def _to_v2(hook: StoredHook) -> dict[str, Any]:
    spec = json_format.MessageToDict(hook.spec, preserving_proto_field_name=True)
    return {"enabled": hook.enabled, "spec": spec}


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
