"""Bounded hand-off of event batches from backend threads to the event loop.

Backends that produce events in threads (kvm vCPU threads, kvm-trace readers) must not call the
loop once per event, nor queue without bound when the loop falls behind. :class:`Handoff` keeps
a count of the events waiting on the loop; a batch that would take it past ``max_events`` is
dropped whole (newest dropped: what is already queued is older and will be delivered) and counted
in ``dropped``. Backends expose that count as ``dropped_handoff`` in their counters, which the
agent announces on the notices topic and exports as a metric.
"""

from __future__ import annotations

import asyncio
import threading

from agent.backends.base import Sink
from agent.events import Event

__all__ = ["DEFAULT_MAX_EVENTS", "Handoff"]

DEFAULT_MAX_EVENTS = 200_000  # ~40 MB of Event records at most waiting on the loop


class Handoff:
    def __init__(
        self, loop: asyncio.AbstractEventLoop, sink: Sink, max_events: int = DEFAULT_MAX_EVENTS
    ) -> None:
        self._loop = loop
        self._sink = sink
        self._max = max_events
        self._lock = threading.Lock()
        self.pending = 0
        self.dropped = 0

    def push(self, events: list[Event]) -> bool:
        """Hand ``events`` to the loop (from any thread); False if dropped (counted)."""
        n = len(events)
        with self._lock:
            if self.pending + n > self._max:
                self.dropped += n
                return False
            self.pending += n
        try:
            self._loop.call_soon_threadsafe(self._deliver, events)
        except RuntimeError:  # the loop is closed: shutting down
            return False
        return True

    def _deliver(self, events: list[Event]) -> None:
        with self._lock:
            self.pending -= len(events)
        self._sink(events)
