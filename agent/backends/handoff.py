"""Bounded hand-off from backend threads to the event loop's :class:`~agent.sink.EventSink`.

Backends that produce events in threads (kvm vCPU threads, kvm-trace readers) must not call the
loop once per event, nor queue without bound when the loop falls behind. :class:`Handoff` keeps
a count of the events waiting on the loop; a batch that would take it past ``max_events`` is
dropped whole (newest dropped: what is already queued is older and will be delivered) and counted
in ``dropped``. Backends expose that count as ``dropped_handoff`` in their counters, which the
agent announces on the notices topic and exports as a metric. Notices (faults, console lines,
breaks) go one loop call each, at most ``max_notices`` waiting; beyond that the newest is dropped
and counted in ``dropped_notices`` (a guest printing without end must not grow the loop's queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

from agent.columns import Block
from agent.events import Event
from agent.notices import Notice
from agent.sink import EventSink

__all__ = ["DEFAULT_MAX_EVENTS", "Handoff"]

_T = TypeVar("_T", Event, Block)

DEFAULT_MAX_EVENTS = 200_000  # ~40 MB of Event records at most waiting on the loop
DEFAULT_MAX_NOTICES = 10_000  # notices waiting on the loop (a console line each, at worst)


class Handoff:
    """Thread-safe: what any thread hands to ``sink`` on ``loop``. A Handoff is itself an
    :class:`~agent.sink.EventSink` (one safe to call from any thread)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sink: EventSink,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_notices: int = DEFAULT_MAX_NOTICES,
    ) -> None:
        self._loop = loop
        self._sink = sink
        self._max = max_events
        self._max_notices = max_notices
        self._lock = threading.Lock()
        self.pending = 0
        self.dropped = 0
        self.pending_notices = 0
        self.dropped_notices = 0

    def push(self, events: list[Event]) -> bool:
        """Hand ``events`` to the loop (from any thread); False if dropped (counted)."""
        return self._push(self._sink.events, events, len(events))

    def push_blocks(self, blocks: list[Block]) -> bool:
        """Hand columns of plain events to the loop (the sink's ``blocks``)."""
        return self._push(self._sink.blocks, blocks, sum(map(len, blocks)))

    # -- the EventSink interface, for threads (vCPU threads write to a Handoff as to a sink) --

    def events(self, events: list[Event]) -> None:
        self.push(events)

    def blocks(self, blocks: list[Block]) -> None:
        self.push_blocks(blocks)

    def notice(self, notice: Notice) -> None:
        """Hand a notice to the loop (from any thread); dropped (counted) beyond the bound,
        nothing once the loop is closed."""
        with self._lock:
            if self.pending_notices >= self._max_notices:
                self.dropped_notices += 1
                return
            self.pending_notices += 1
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._deliver_notice, notice)

    def _deliver_notice(self, notice: Notice) -> None:
        with self._lock:
            self.pending_notices -= 1
        self._sink.notice(notice)

    def _push(self, sink: Callable[[list[_T]], None], items: list[_T], n: int) -> bool:
        with self._lock:
            if self.pending + n > self._max:
                self.dropped += n
                return False
            self.pending += n
        try:
            self._loop.call_soon_threadsafe(self._deliver, sink, items, n)
        except RuntimeError:  # the loop is closed: shutting down
            return False
        return True

    def _deliver(self, sink: Callable[[list[_T]], None], items: list[_T], n: int) -> None:
        with self._lock:
            self.pending -= n
        sink(items)
