"""Hooks on disk, so an agent restart restores them.

``<state_dir>/hooks.json`` holds every hook's command text, id and enabled flag; it is rewritten
atomically (write to a temporary file, fsync, rename) after every change.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import structlog

__all__ = ["HookStore", "StoredHook"]

log = structlog.get_logger("ioind.state")


@dataclass(frozen=True, slots=True)
class StoredHook:
    id: str
    command: str
    enabled: bool


class HookStore:
    def __init__(self, state_dir: str | Path) -> None:
        self.path = Path(state_dir) / "hooks.json"

    def load(self) -> list[StoredHook]:
        """The saved hooks; a missing file is empty, a corrupt one is logged and set aside."""
        try:
            raw = json.loads(self.path.read_text())
            return [StoredHook(h["id"], h["command"], bool(h["enabled"])) for h in raw["hooks"]]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as exc:
            aside = self.path.with_suffix(".corrupt")
            log.error("state-unreadable", path=str(self.path), error=str(exc), moved_to=str(aside))
            self.path.replace(aside)
            return []

    def save(self, hooks: list[StoredHook]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        body = {"hooks": [{"id": h.id, "command": h.command, "enabled": h.enabled} for h in hooks]}
        with tmp.open("w") as f:
            json.dump(body, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)
