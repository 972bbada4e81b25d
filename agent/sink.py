"""The one seam from a backend to the event pipeline: :class:`EventSink`.

:meth:`agent.backends.base.Backend.run` receives an ``EventSink`` and calls it **on the event loop
thread only** (threads hand over through :class:`~agent.backends.handoff.Handoff`, once per batch,
never once per exit):

- :meth:`EventSink.events`: a batch of :class:`~agent.events.Event` records;
- :meth:`EventSink.blocks`: :class:`~agent.columns.Block` columns of plain events (no per-event
  object: the sim's and the kvm C loop's fast path);
- :meth:`EventSink.notice`: a typed :class:`~agent.notices.Notice` (console, break, faults, ...).

:class:`agent.pipeline.Pipeline` implements it for the agent; :class:`agent.backends.testing.
ListSink` collects everything for tests. A sink is an object with three methods, never found by
introspection: wrapping one is writing another class with the same three methods.
"""

from __future__ import annotations

from typing import Protocol

from agent.columns import Block
from agent.events import Event
from agent.notices import Notice

__all__ = ["EventSink"]


class EventSink(Protocol):
    """Where a backend's output goes (event loop thread only)."""

    def events(self, events: list[Event]) -> None:
        """A batch of events, in the order they happened."""
        ...

    def blocks(self, blocks: list[Block]) -> None:
        """Columns of plain events, each block one hook's, in order."""
        ...

    def notice(self, notice: Notice) -> None:
        """A side-channel message (see :mod:`agent.notices`)."""
        ...
