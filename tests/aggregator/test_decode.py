"""Decoding batches as columns agrees with the agent's own reader (agent.batch.batch_events),
for both forms of a batch and for JSON; refusals name what is wrong."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.batch import Block, batch_events, pack_batch
from agent.events import Event, to_json
from agent.model import Direction
from agent.publish.payload import encode_batch
from agent.wire import events_pb2
from aggregator.decode import Window, decode
from aggregator.errors import Junk
from aggregator.wire import read_batch

NOW = time.time_ns()

events = st.lists(
    st.builds(
        Event,
        hook_id=st.sampled_from(["in-3f8", "out-70", "h.x_1"]),
        ts=st.integers(NOW - 10**12, NOW),
        dir=st.sampled_from([Direction.IN, Direction.OUT]),
        port=st.integers(0, 0xFFFF),
        size=st.sampled_from([1, 2, 4]),
        value=st.integers(0, 2**32 - 1),
        data=st.one_of(st.just(()), st.tuples(st.integers(0, 255), st.integers(0, 255))),
        vm=st.integers(0, 2**32 - 1),
        vm_name=st.sampled_from(["", "vm0", "web"]),
        vcpu=st.integers(0, 64),
        break_id=st.sampled_from(["", "b1"]),
        seq=st.integers(1, 2**40),
    ),
    max_size=40,
    unique_by=lambda e: e.seq,
)


@settings(max_examples=150, deadline=None)
@given(events)
def test_columns_match_the_agents_reader(evs: list[Event]) -> None:
    payload = pack_batch("h1", "e1", evs).SerializeToString()
    cols = read_batch(payload)
    ref = sorted(
        batch_events(events_pb2.EventBatch.FromString(payload)),
        key=lambda e: (e.seq, e.port, e.ts),
    )
    order = np.lexsort((cols.ts, cols.port, cols.seq))
    got = [
        (int(cols.seq[i]), int(cols.ts[i]), cols.hook_ids[int(cols.hook[i])], int(cols.port[i]),
         int(cols.value[i]), int(cols.vm[i]), cols.vm_names[int(cols.vm_name[i])],
         int(cols.vcpu[i]), bool(cols.out[i]))
        for i in order
    ]  # fmt: skip
    want = [
        (e.seq, e.ts, e.hook_id, e.port, e.value, e.vm, e.vm_name, e.vcpu, e.dir is Direction.OUT)
        for e in ref
    ]
    assert got == want


def sample(n: int = 5, host: str = "h1") -> list[Event]:
    return [Event("in-3f8", NOW + i, Direction.IN, 0x3F8, value=i, seq=i + 1) for i in range(n)]


def test_json_batches_decode_to_the_same_columns() -> None:
    evs = sample()
    body, ctype = encode_batch("h1", "e1", evs, "json")
    a = decode(body, ctype, "h1", NOW, Window())
    b = decode(pack_batch("h1", "e1", evs).SerializeToString(), "", "h1", NOW, Window())
    for name in ("seq", "ts", "port", "value", "vm", "vcpu", "out"):
        assert getattr(a, name).tolist() == getattr(b, name).tolist(), name


def test_block_batches_decode() -> None:
    n = 100
    block = Block(
        "in-70", [NOW] * n, [0x70] * n, [1] * n, [2] * n, ["v"] * n, [1] * n, [0] * n, [1] * n,
        [3] * n, list(range(1, n + 1)),
    )  # fmt: skip
    cols = read_batch(pack_batch("h1", "e1", block).SerializeToString())
    assert len(cols) == n
    assert cols.out.all()  # flag bit 0


@pytest.mark.parametrize(
    ("mutate", "kind", "says"),
    [
        (lambda b: b.columns.port.__setitem__(0, 0x10000), "malformed", "port 65536"),
        (lambda b: b.columns.hook.__setitem__(0, 9), "malformed", "out of its table"),
        (lambda b: b.columns.ts.append(1), "malformed", "different lengths"),
        (lambda b: setattr(b, "host", "h2"), "foreign-host", "'h2'"),
        (lambda b: setattr(b, "epoch", ""), "malformed", "epoch"),
        (lambda b: b.columns.hook_ids.__setitem__(0, "Bad/Id"), "malformed", "Bad/Id"),
        (lambda b: b.columns.ts.__setitem__(0, NOW + 10**13), "future", "in the future"),
        (lambda b: b.columns.ts.__setitem__(0, 1), "past", "old"),
    ],
)
def test_refusals_name_what_is_wrong(mutate: object, kind: str, says: str) -> None:
    batch = pack_batch("h1", "e1", sample())
    mutate(batch)  # type: ignore[operator]
    with pytest.raises(Junk) as exc:
        decode(batch.SerializeToString(), "", "h1", NOW, Window())
    assert exc.value.kind == kind
    assert says in exc.value.reason


def test_json_refusals() -> None:
    ev = to_json(sample(1)[0], "h1", "e1") | {"port": "0x3f8"}
    body = json.dumps({"host": "h1", "epoch": "e1", "events": [ev]}).encode()
    with pytest.raises(Junk, match="'port'"):
        decode(body, "application/json", "h1", NOW, Window())
    with pytest.raises(Junk, match="content type 'text/plain'"):
        decode(body, "text/plain", "h1", NOW, Window())
