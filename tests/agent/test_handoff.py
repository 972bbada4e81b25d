from __future__ import annotations

import asyncio
import threading

from agent.backends import testing
from agent.backends.handoff import Handoff
from agent.events import Event
from agent.model import Direction
from agent.notices import Notice, NoticeKind


def batch(n: int) -> list[Event]:
    return [Event("h", 0, Direction.IN, 0x70) for _ in range(n)]


class ListSink(testing.ListSink):
    """Also keeps the size of each batch delivered."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def events(self, events: list[Event]) -> None:
        self.sizes.append(len(events))
        super().events(events)


async def test_batches_from_threads_arrive_whole_and_the_bound_drops_newest() -> None:
    sink = ListSink()
    got = sink.sizes
    handoff = Handoff(asyncio.get_running_loop(), sink, max_events=10)

    def producer() -> list[bool]:
        # the loop is blocked in join(): nothing is delivered while these are pushed
        return [handoff.push(batch(4)) for _ in range(4)]

    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.extend(producer()))
    thread.start()
    thread.join()
    assert results == [True, True, False, False]
    assert (handoff.pending, handoff.dropped) == (8, 8)
    await asyncio.sleep(0)
    assert got == [4, 4]
    assert handoff.pending == 0
    assert handoff.push(batch(10))  # room again once delivered


async def test_notices_from_threads_are_bounded_and_counted() -> None:
    sink = ListSink()
    handoff = Handoff(asyncio.get_running_loop(), sink, max_notices=3)
    line = Notice(NoticeKind.CONSOLE, {"vm": 1, "vm_name": "g", "text": "x"})

    def producer() -> None:
        for _ in range(5):
            handoff.notice(line)

    thread = threading.Thread(target=producer)
    thread.start()
    thread.join()  # the loop is blocked: nothing delivered yet
    assert (handoff.pending_notices, handoff.dropped_notices) == (3, 2)
    await asyncio.sleep(0)
    assert sink.notices == [line] * 3
    assert handoff.pending_notices == 0
