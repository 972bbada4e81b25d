from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.columns import Block
from agent.events import Event
from agent.hooks.table import HookTable
from agent.model import Direction
from agent.notices import Notice
from agent.pipeline import Batch, Pipeline, TokenBucket
from agent.publish.outbox import Message, Outbox
from agent.publish.spool import Spool
from agent.wire import hooks_pb2


def ev(hook_id: str) -> Event:
    return Event(hook_id, 0, Direction.IN, 0x70)


def seqs(batch: list[Event] | Block) -> list[int]:
    return list(batch.seq) if isinstance(batch, Block) else [e.seq for e in batch]


def make(batch_max: int = 3, **spec_kw: int) -> tuple[Pipeline, list[tuple[str, Batch]]]:
    table = HookTable()
    table.set(hooks_pb2.HookSpec(id="a", direction=hooks_pb2.DIRECTION_IN, **spec_kw))  # type: ignore[arg-type]
    table.set(hooks_pb2.HookSpec(id="b", direction=hooks_pb2.DIRECTION_IN))
    out: list[tuple[str, Batch]] = []
    return Pipeline(table, lambda h, e: out.append((h, e)), batch_max=batch_max, batch_ms=10), out


def test_sequence_is_gap_free_across_hooks_and_batches_cut_by_size() -> None:
    p, out = make()
    p.events([ev("a"), ev("b"), ev("a"), ev("a"), ev("b")])
    assert [(h, seqs(evs)) for h, evs in out] == [("a", [1, 3, 4])]
    p.flush()
    assert out[-1] == ("b", out[-1][1])
    assert seqs(out[-1][1]) == [2, 5]


async def test_partial_batches_leave_after_batch_ms() -> None:
    p, out = make(batch_max=1000)
    task = asyncio.create_task(p.run())
    p.events([ev("a")])
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert [h for h, _ in out] == ["a"]


def test_rate_limit_suppresses_without_consuming_sequence_numbers() -> None:
    p, out = make(batch_max=1000, rate=2, burst=2)
    p.events([ev("a") for _ in range(10)] + [ev("b")])
    p.flush()
    assert {h: seqs(evs) for h, evs in out} == {"a": [1, 2], "b": [3]}
    notices: list[Notice] = []
    p._notice = notices.append
    p._announce_suppressed()
    assert notices == [("suppressed", {"hook_id": "a", "events": 8, "rate": 2.0})]


def test_token_bucket_refills() -> None:
    b = TokenBucket(rate=10, burst=1)
    assert b.take(b.stamp)
    assert not b.take(b.stamp)
    assert b.take(b.stamp + 0.2)


async def test_outbox_sends_control_first_and_bounds_control_dropping_oldest() -> None:
    box = Outbox(Spool(":memory:", max_bytes=1 << 20), max_control=2)
    for i in range(2):
        box.put_events(f"e{i}", b"x", "", 10)
    for i in range(3):
        box.put_control(Message(f"c{i}", b""))
    assert box.dropped_control == 1
    got = [await box.get() for _ in range(4)]
    assert [m.topic for m in got if m] == ["c1", "c2", "e0", "e1"]


async def test_unacked_batches_come_back_after_requeue_and_acked_ones_do_not() -> None:
    box = Outbox(Spool(":memory:", max_bytes=1 << 20))
    for i in range(3):
        box.put_events(f"e{i}", b"x", "", 1)
    first = [await box.get() for _ in range(3)]
    assert first[0] is not None
    box.ack(first[0])
    box.requeue([m for m in first[1:] if m])
    again = [await box.get() for _ in range(2)]
    assert [m.topic for m in again if m] == ["e1", "e2"]
    assert box.depth() == 2
    with pytest.raises(TimeoutError):  # nothing left: get() waits, it never returns None
        await asyncio.wait_for(box.get(), 0.05)


def test_the_spool_drops_oldest_beyond_its_cap_and_counts() -> None:
    spool = Spool(":memory:", max_bytes=250)
    for i in range(5):
        spool.put(f"t{i}", b"x" * 100, "", events=10)
    assert (spool.batches, spool.bytes) == (2, 200)
    assert (spool.dropped_batches, spool.dropped_events) == (3, 30)
    assert [b.topic for b in spool.take(10)] == ["t3", "t4"]


def test_the_spool_survives_reopening(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", max_bytes=1 << 20)
    ids = [spool.put(f"t{i}", b"abc", "ct", 7) for i in range(3)]
    spool.ack(ids[0], 7, 3)
    spool.close()
    again = Spool(tmp_path / "s.db", max_bytes=1 << 20)
    assert (again.batches, again.events, again.bytes, again.recovered_batches) == (2, 14, 6, 2)
    assert [(b.topic, b.payload, b.content_type) for b in again.take(10)] == [
        ("t1", b"abc", "ct"),
        ("t2", b"abc", "ct"),
    ]


def block(hook_id: str, n: int, port: int = 0x70) -> Block:
    return Block(
        hook_id,
        [0] * n,
        [port] * n,
        list(range(n)),
        [1] * n,
        ["v"] * n,
        [0] * n,
        [0] * n,
        [1] * n,
        [2] * n,
    )


def test_blocks_are_numbered_by_range_with_events_and_cut_by_slicing() -> None:
    p, out = make(batch_max=4)
    p.blocks([block("a", 3), block("b", 2)])
    p.events([ev("b")])  # the other kind: b's pending block leaves first
    p.blocks([block("a", 6)])
    assert [(h, seqs(b)) for h, b in out] == [
        ("b", [4, 5]),
        ("a", [1, 2, 3, 7]),
        ("a", [8, 9, 10, 11]),
    ]
    assert isinstance(out[1][1], Block)
    assert list(out[1][1].value) == [0, 1, 2, 0]
    p.flush()
    assert sorted((h, seqs(b)) for h, b in out[3:]) == [("a", [12]), ("b", [6])]
    assert (p.seq, p.matched) == (12, 12)
    assert [(h.spec.id, h.hits) for h in p._table] == [("a", 9), ("b", 3)]


def test_blocks_pass_the_token_bucket_by_count() -> None:
    p, out = make(batch_max=1000, rate=2, burst=3)
    p.blocks([block("a", 2), block("a", 5), block("b", 1)])
    p.flush()
    assert {h: seqs(b) for h, b in out} == {"a": [1, 2, 3], "b": [4]}
    assert (p.matched, p._buckets["a"].suppressed) == (8, 4)
