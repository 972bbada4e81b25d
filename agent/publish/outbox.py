"""The outbox: what waits for the broker, bounded, with stated overflow policies and drop counters.

- **Event batches** go to the durable :class:`~agent.publish.spool.Spool` on disk (cap in MB,
  drop-oldest, counted); the publisher reads them back in order through a small read-ahead buffer
  (at most ``READAHEAD`` batches in memory) and deletes each one on its PUBACK.
- **Control messages** (status, notices, breaks, console) wait in memory, at most ``max_control``;
  when full the *oldest* is dropped and counted in ``dropped_control``. They go out first.

When the connection drops, messages taken but not acknowledged are handed back with
:meth:`Outbox.requeue`: control messages return to the front; event batches are still in the spool,
which is rewound to its oldest unacknowledged batch (at-least-once delivery).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace

from agent.publish.spool import Spool

__all__ = ["READAHEAD", "Message", "Outbox"]

READAHEAD = 32  # spooled batches held in memory for the publisher


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT publish: topic, payload and how to send it."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    content_type: str = ""
    events: int = 0  # events carried (0 for control messages)
    spool_id: int = 0  # row in the spool (event batches)


class Outbox:
    def __init__(self, spool: Spool, max_control: int = 1024) -> None:
        self.spool = spool
        self._ahead: deque[Message] = deque()
        self._control: deque[Message] = deque()
        self._max_control = max_control
        self._ready = asyncio.Event()
        self.dropped_control = 0

    @property
    def dropped_events(self) -> int:
        return self.spool.dropped_events

    def put_events(self, topic: str, payload: bytes, content_type: str, events: int) -> None:
        """Spool an EventBatch (the spool drops its oldest batches when over its cap)."""
        self.spool.put(topic, payload, content_type, events)
        self._ready.set()

    def put_control(self, msg: Message) -> None:
        """Queue a control message, dropping the oldest one if full."""
        if len(self._control) >= self._max_control:
            self._control.popleft()
            self.dropped_control += 1
        self._control.append(msg)
        self._ready.set()

    def ack(self, msg: Message) -> None:
        """The broker acknowledged ``msg``."""
        if msg.spool_id:
            self.spool.ack(msg.spool_id, msg.events, len(msg.payload))

    def requeue(self, msgs: Iterable[Message]) -> None:
        """Hand back unacknowledged messages (the connection dropped)."""
        for msg in reversed([m for m in msgs if not m.spool_id]):
            self._control.appendleft(msg)
        self._ahead.clear()
        self.spool.rewind()
        self._ready.set()

    async def get(self) -> Message:
        """The next message, control first; waits while there is none."""
        while True:
            if self._control:
                return self._control.popleft()
            if not self._ahead:
                self._fill()
            if self._ahead:
                return self._ahead.popleft()
            self._ready.clear()
            await self._ready.wait()

    def _fill(self) -> None:
        for b in self.spool.take(READAHEAD):
            msg = Message(b.topic, b.payload, content_type=b.content_type, events=b.events)
            self._ahead.append(replace(msg, spool_id=b.id))

    def depth(self) -> int:
        """Batches and control messages not yet acknowledged."""
        return self.spool.batches + len(self._control)
