from __future__ import annotations

import asyncio
import threading

from agent.backends.handoff import Handoff
from agent.events import Event
from agent.model import Direction


def batch(n: int) -> list[Event]:
    return [Event("h", 0, Direction.IN, 0x70) for _ in range(n)]


async def test_batches_from_threads_arrive_whole_and_the_bound_drops_newest() -> None:
    got: list[int] = []
    handoff = Handoff(asyncio.get_running_loop(), lambda evs: got.append(len(evs)), max_events=10)

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
