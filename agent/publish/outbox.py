"""The outbox: bounded queues between the pipeline and the MQTT publisher.

Two queues, both bounded, with stated overflow policies and drop counters:

- ``events``: EventBatch messages, at most ``max_batches``; when full the *newest* batch is dropped
  (its events keep their sequence numbers, so consumers see the gap) and counted in
  ``dropped_events`` / ``dropped_batches``.
- ``control``: status, notices, breaks and console output, at most ``max_control``; when full the
  *oldest* message is dropped and counted in ``dropped_control``. Control goes out first.

Messages taken by the publisher but not acknowledged when the connection drops are handed back
with :meth:`Outbox.requeue` and go out again first (at-least-once).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Message", "Outbox"]


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT publish: topic, payload and how to send it."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    content_type: str = ""
    events: int = 0  # events carried (0 for control messages)


class Outbox:
    def __init__(self, max_batches: int, max_control: int = 1024) -> None:
        self._events: deque[Message] = deque()
        self._control: deque[Message] = deque()
        self._max_batches = max_batches
        self._max_control = max_control
        self._ready = asyncio.Event()
        self._poked = False
        self.dropped_events = 0
        self.dropped_batches = 0
        self.dropped_control = 0
        self.queued_events = 0

    def put_events(self, msg: Message) -> bool:
        """Queue an EventBatch; False (and counted) if the queue was full."""
        if len(self._events) >= self._max_batches:
            self.dropped_batches += 1
            self.dropped_events += msg.events
            return False
        self._events.append(msg)
        self.queued_events += msg.events
        self._ready.set()
        return True

    def put_control(self, msg: Message) -> None:
        """Queue a control message, dropping the oldest one if full."""
        if len(self._control) >= self._max_control:
            self._control.popleft()
            self.dropped_control += 1
        self._control.append(msg)
        self._ready.set()

    def requeue(self, msgs: Iterable[Message]) -> None:
        """Put unacknowledged messages back at the front, in their original order."""
        for msg in reversed(list(msgs)):
            if msg.events:
                self._events.appendleft(msg)
                self.queued_events += msg.events
            else:
                self._control.appendleft(msg)
        self._ready.set()

    def wake(self) -> None:
        """Make a waiting :meth:`get` return ``None`` once (the publisher's connection broke)."""
        self._poked = True
        self._ready.set()

    async def get(self) -> Message | None:
        """The next message, control first; ``None`` after :meth:`wake`."""
        while not (self._control or self._events):
            if self._poked:
                self._poked = False
                return None
            self._ready.clear()
            await self._ready.wait()
        if self._control:
            return self._control.popleft()
        msg = self._events.popleft()
        self.queued_events -= msg.events
        return msg

    def depth(self) -> int:
        return len(self._events) + len(self._control)
