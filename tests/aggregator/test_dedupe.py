"""Exactly-once, as a property: whatever mix of fresh, repeated and overlapping-in-time batches
arrives, in whatever group commits, the store counts each (host, epoch, seq) once."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.batch import Block, pack_batch
from aggregator.ingest import Ingestor
from aggregator.store import open_store

NOW = time.time_ns()


def batch(host: str, epoch: str, seqs: list[int]) -> bytes:
    n = len(seqs)
    b = Block(
        "in-70", [NOW + s for s in seqs], [0x70 + s % 3 for s in seqs], [s % 5 for s in seqs],
        [s % 2 for s in seqs], ["vm"] * n, [0] * n, [0] * n, [1] * n, [2] * n, seqs,
    )  # fmt: skip
    return pack_batch(host, epoch, b).SerializeToString()


@st.composite
def streams(draw: st.DrawFn) -> list[tuple[str, str, list[int]]]:
    """Batches as agents cut them: each stream numbers its events 1..N across two hooks, each
    hook's events are cut into batches of up to ``cut`` (so a batch's numbers interleave with
    the other hook's)."""
    out = []
    for host, epoch in (("a", "e1"), ("a", "e2"), ("b", "e1")):
        n = draw(st.integers(0, 80))
        hooks = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        cut = draw(st.integers(1, 10))
        for hook in (False, True):
            seqs = [i + 1 for i in range(n) if hooks[i] is hook]
            out += [(host, epoch, seqs[k : k + cut]) for k in range(0, len(seqs), cut)]
    return out


@settings(max_examples=60, deadline=None)
@given(streams(), st.integers(1, 6), st.randoms(use_true_random=False))
def test_each_sequence_number_counts_once(
    sent: list[tuple[str, str, list[int]]], commit: int, rnd: object
) -> None:
    lost = {i for i in range(len(sent)) if i % 7 == 3}  # never delivered: gaps
    delivered = [b for i, b in enumerate(sent) if i not in lost]
    again = delivered[::3]  # redeliveries and replays
    arriving = [(h, batch(h, e, seqs), "") for h, e, seqs in delivered + again]
    rnd.shuffle(arriving)  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as d:
        store = open_store("", Path(d))
        ing = Ingestor(store)
        for i in range(0, len(arriving), commit):
            ing.commit(arriving[i : i + commit])
        counted = {lvl: store.fetch(f"SELECT COALESCE(SUM(events), 0) FROM r_{lvl}")[0][0]
                   for lvl in "smth"}  # fmt: skip
        store.close()
    want = sum(len(seqs) for _, _, seqs in delivered)
    assert counted == dict.fromkeys("smth", want)
    assert ing.stats.events == want
    assert ing.stats.duplicates == sum(len(seqs) for _, _, seqs in again)
