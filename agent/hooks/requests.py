"""Scripts' ``event_enable`` / ``event_disable`` / ``event_clear``: from a hit to the agent's loop.

A script runs where its hit is handled (a kvm vCPU thread, a kvm-trace reader thread, the sim's
step on the loop), and must neither block there nor change the table there. What it asks goes
into the table's :class:`RequestInbox`, thread-safe and bounded:

- at most :data:`MAX_PENDING` requests wait for the loop; beyond that the newest is dropped and
  counted (``dropped``, GetStatus counter ``script_requests_dropped``), and the drops are
  announced on ``notices`` (kind ``script-hook``, ``result`` ``dropped``) at most once a second;
- a request already waiting (same action and target) is not queued again: a script that
  disables a hook on every hit asks once per turn of the loop (``coalesced``);
- the loop wakes once per batch (one ``call_soon_threadsafe`` when the inbox stops being empty).

:meth:`RequestInbox.serve` runs on the agent's loop (a task of its runtime) and hands each
request to the hook service (:meth:`~agent.hooks.service.HookService.script_request`), which
disables, enables or removes the hook exactly as the gRPC calls do: saved, the backend told,
the table swapped lock-free. Each outcome is announced on ``notices`` (``script-hook``), the same
outcome of the same request at most once a second (``times`` says how many it stands for).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from agent.notices import Notice, NoticeKind

__all__ = ["MAX_PENDING", "UNKNOWN", "HookRequest", "RequestInbox"]

MAX_PENDING = 1024  # requests waiting for the loop (each a few dozen bytes)
PER_TURN = 64  # requests applied before the loop serves others (each may write the store)
NOTICE_INTERVAL_S = 1.0  # the same outcome of the same request is announced this often at most
_REMEMBERED = 4096  # (request, outcome) pairs whose last notice is remembered

UNKNOWN = "unknown hook"  # the outcome of a request naming no hook


class HookRequest(NamedTuple):
    """``by`` (the hook whose script asked) wants ``action`` (``event_disable``, ...) done to
    ``target``: a hook id (a string literal), or a number that is a hook's ``$event_id``."""

    by: str
    action: str
    target: int | str


Apply = Callable[[HookRequest], str]  # a request -> its outcome ("disabled", "unknown hook", ...)


class RequestInbox:
    """Requests from any thread, served on the agent's loop (see the module docstring)."""

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self._max = max_pending
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, int | str], HookRequest] = {}  # insertion-ordered
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Event | None = None
        self.posted = 0
        self.coalesced = 0
        self.dropped = 0
        self.applied = 0
        self.unknown = 0  # requests naming no hook (a no-op each)

    def post(self, request: HookRequest) -> None:
        """Queue ``request`` (from any thread); never blocks, never raises."""
        key = (request.action, request.target)
        with self._lock:
            self.posted += 1
            if key in self._pending:
                self.coalesced += 1
                return
            if len(self._pending) >= self._max:
                self.dropped += 1  # newest dropped: what waits is older and will be applied
                return
            self._pending[key] = request
            wake = len(self._pending) == 1
            loop, ready = self._loop, self._ready
        if wake and loop is not None and ready is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: shutting down
                loop.call_soon_threadsafe(ready.set)

    def counters(self) -> dict[str, int]:
        return {
            "script_requests": self.posted,
            "script_requests_applied": self.applied,
            "script_requests_coalesced": self.coalesced,
            "script_requests_dropped": self.dropped,
            "script_requests_unknown": self.unknown,
        }

    async def serve(self, apply: Apply, notice: Callable[[Notice], None]) -> None:
        """Apply requests as they come, until cancelled (the agent's loop only)."""
        ready = asyncio.Event()
        with self._lock:
            self._loop, self._ready = asyncio.get_running_loop(), ready
            if self._pending:
                ready.set()
        said = _Said(notice)
        dropped = 0
        try:
            while True:
                await ready.wait()
                ready.clear()
                for request in self._take():
                    outcome = apply(request)
                    self.applied += 1
                    self.unknown += outcome == UNKNOWN
                    said.tell(request, outcome)
                if self.dropped > dropped:
                    dropped = said.drops(self.dropped - dropped, self.dropped)
                await asyncio.sleep(0)  # other work first, then what came meanwhile
        finally:
            with self._lock:
                self._loop = self._ready = None

    def _take(self) -> list[HookRequest]:
        """Up to :data:`PER_TURN` waiting requests, oldest first; the loop comes back for more."""
        with self._lock:
            keys = list(self._pending)[:PER_TURN]
            taken = [self._pending.pop(k) for k in keys]
            if self._pending and self._ready is not None:
                self._ready.set()
        return taken


class _Said:
    """Notices of outcomes, the same (request, outcome) at most once per interval."""

    def __init__(self, notice: Callable[[Notice], None]) -> None:
        self._notice = notice
        self._next: dict[tuple[HookRequest, str], tuple[float, int]] = {}
        self._drops_next = 0.0

    def tell(self, request: HookRequest, outcome: str) -> None:
        if outcome == "unchanged":
            return  # already so: nothing happened, nothing to announce
        key = (request, outcome)
        now = time.monotonic()
        due, times = self._next.get(key, (0.0, 0))
        times += 1
        if now < due:
            self._next[key] = (due, times)
            return
        if len(self._next) >= _REMEMBERED:
            self._next.clear()
        self._next[key] = (now + NOTICE_INTERVAL_S, 0)
        fields: dict[str, object] = {
            "hook_id": request.by,
            "action": request.action,
            "target": request.target,
            "result": outcome,
            "times": times,
        }
        self._notice(Notice(NoticeKind.SCRIPT_HOOK, fields))

    def drops(self, new: int, total: int) -> int:
        """Announce ``new`` dropped requests if a drop notice is due; the total announced."""
        now = time.monotonic()
        if now < self._drops_next:
            return total - new
        self._drops_next = now + NOTICE_INTERVAL_S
        fields: dict[str, object] = {"result": "dropped", "requests": new, "total": total}
        self._notice(Notice(NoticeKind.SCRIPT_HOOK, fields))
        return total
