from __future__ import annotations

import asyncio

from agent.events import Event
from agent.hooks.table import HookTable
from agent.model import Direction
from agent.pipeline import Pipeline, TokenBucket
from agent.publish.outbox import Message, Outbox
from agent.wire import hooks_pb2


def ev(hook_id: str) -> Event:
    return Event(hook_id, 0, Direction.IN, 0x70)


def make(batch_max: int = 3, **spec_kw: int) -> tuple[Pipeline, list[tuple[str, list[Event]]]]:
    table = HookTable()
    table.set(hooks_pb2.HookSpec(id="a", direction=hooks_pb2.DIRECTION_IN, **spec_kw))  # type: ignore[arg-type]
    table.set(hooks_pb2.HookSpec(id="b", direction=hooks_pb2.DIRECTION_IN))
    out: list[tuple[str, list[Event]]] = []
    return Pipeline(table, lambda h, e: out.append((h, e)), batch_max=batch_max, batch_ms=10), out


def test_sequence_is_gap_free_across_hooks_and_batches_cut_by_size() -> None:
    p, out = make()
    p.submit([ev("a"), ev("b"), ev("a"), ev("a"), ev("b")])
    assert [(h, [e.seq for e in evs]) for h, evs in out] == [("a", [1, 3, 4])]
    p.flush()
    assert out[-1] == ("b", out[-1][1])
    assert [e.seq for e in out[-1][1]] == [2, 5]


async def test_partial_batches_leave_after_batch_ms() -> None:
    p, out = make(batch_max=1000)
    task = asyncio.create_task(p.run())
    p.submit([ev("a")])
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert [h for h, _ in out] == ["a"]


def test_rate_limit_suppresses_without_consuming_sequence_numbers() -> None:
    p, out = make(batch_max=1000, rate=2, burst=2)
    p.submit([ev("a") for _ in range(10)] + [ev("b")])
    p.flush()
    seqs = {h: [e.seq for e in evs] for h, evs in out}
    assert seqs == {"a": [1, 2], "b": [3]}
    notices: list[tuple[str, dict[str, object]]] = []
    p._notice = lambda kind, fields: notices.append((kind, fields))
    p._announce_suppressed()
    assert notices == [("suppressed", {"hook_id": "a", "events": 8, "rate": 2.0})]


def test_token_bucket_refills() -> None:
    b = TokenBucket(rate=10, burst=1)
    assert b.take(b.stamp)
    assert not b.take(b.stamp)
    assert b.take(b.stamp + 0.2)


async def test_outbox_bounds_events_drop_newest_and_control_drop_oldest() -> None:
    box = Outbox(max_batches=2, max_control=2)
    for i in range(3):
        box.put_events(Message(f"e{i}", b"", events=10))
    for i in range(3):
        box.put_control(Message(f"c{i}", b""))
    assert (box.dropped_batches, box.dropped_events, box.dropped_control) == (1, 10, 1)
    got = [await box.get() for _ in range(4)]
    assert [m.topic for m in got if m] == ["c1", "c2", "e0", "e1"]
    box.requeue([m for m in got if m and m.events])
    assert box.queued_events == 20
    box.wake()
    assert (await box.get()) is not None  # queued messages first
