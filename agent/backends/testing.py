"""A sink that keeps everything: the :class:`~agent.sink.EventSink` for tests and tools.

``ListSink`` is to :class:`~agent.pipeline.Pipeline` what httpx's ``MockTransport`` is to its
real transports: the same interface, no machinery. Each call's events are kept as one batch
(blocks as their events, so a test reads every event in order whatever form it took), and the
blocks themselves too. Event loop thread only, like every EventSink.
"""

from __future__ import annotations

from agent.columns import Block
from agent.events import Event
from agent.notices import Notice, NoticeKind

__all__ = ["ListSink"]


class ListSink:
    """Collects batches, blocks and notices in arrival order."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []
        self.received: list[Event] = []  # every event so far, in order
        self.blocks_seen: list[Block] = []
        self.notices: list[Notice] = []

    def events(self, events: list[Event]) -> None:
        self.batches.append(events)
        self.received.extend(events)

    def blocks(self, blocks: list[Block]) -> None:
        self.blocks_seen.extend(blocks)
        self.events([e for b in blocks for e in b.events()])

    def notice(self, notice: Notice) -> None:
        self.notices.append(notice)

    def of_kind(self, kind: NoticeKind) -> list[Notice]:
        """The notices of ``kind``, in order."""
        return [n for n in self.notices if n.kind is kind]
