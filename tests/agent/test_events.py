from __future__ import annotations

import json

import pytest

from agent.batch import F_REGS, F_RIP, Block, batch_events, batch_size, pack_batch
from agent.events import JSON_KEYS, Event, from_json, to_json
from agent.model import Direction, Stage
from agent.publish.payload import encode_batch
from agent.wire import events_pb2

PLAIN = Event(
    "in-70", 11, Direction.IN, 0x70, value=0x41, vm=2, vm_name="web", vcpu=1, cpu=3, seq=1
)
RICH = [
    PLAIN,
    Event(
        "in-70",
        12,
        Direction.OUT,
        0x71,
        size=2,
        value=7,
        vm=2,
        vm_name="db",
        stage=Stage.POST,
        value_set=9,
        skipped=True,
        seq=2,
    ),
    Event(
        "ins",
        13,
        Direction.IN,
        0x3F8,
        size=4,
        count=3,
        string=True,
        rep=True,
        value=1,
        data=(1, 2, 3),
        rip=0x1000,
        regs={"rcx": 0},
        seq=3,
    ),
    Event("brk", 14, Direction.IN, 0x60, break_id="b1", seq=4),
    Event("kvm", 15, Direction.IN, 0x80, rip=0x1002, regs={"rax": 1, "rdx": 0x80}, seq=5),
    Event("kvm", 16, Direction.IN, 0x80, rip=0x1002, regs={"rax": 2, "rdx": 0x80}, seq=6),
    Event("kvm", 17, Direction.IN, 0x80, rip=0x1004, regs={"rbx": 2}, seq=7),  # other names
]


def test_a_batch_round_trips_through_both_forms_in_sequence_order() -> None:
    batch = events_pb2.EventBatch.FromString(pack_batch("h", "e", RICH).SerializeToString())
    # columns: plain events, and rip + registers under the batch's shared register names
    assert list(batch.columns.seq) == [1, 2, 5, 6]
    assert list(batch.columns.reg_names) == ["rax", "rdx"]
    # messages: string I/O data, a break id, registers named otherwise
    assert [e.seq for e in batch.events] == [3, 4, 7]
    assert batch_size(batch) == 7
    assert batch_events(batch) == RICH


def test_malformed_columns_are_a_value_error() -> None:
    batch = pack_batch("h", "e", [PLAIN])
    batch.columns.port.append(1)
    with pytest.raises(ValueError, match="different lengths"):
        batch_events(batch)
    batch = pack_batch("h", "e", [PLAIN])
    batch.columns.hook[0] = 5
    with pytest.raises(ValueError, match="out of its table"):
        batch_events(batch)


def test_json_form_has_exactly_the_design_keys_and_round_trips() -> None:
    for ev in RICH:
        obj = to_json(ev, "h", "e")
        assert tuple(obj) == JSON_KEYS
        assert from_json(obj) == ev


def test_a_block_packs_into_columns_and_reads_back_as_its_events() -> None:
    flags = [2, 2 | 1, 4 | 16 | 128]  # size 1 in; size 1 out; size 2 post skipped
    blk = Block(
        "in-70", [11, 11, 12], [0x70, 0x71, 0x72], [1, 2, 3], [2, 3, 2], ["web", "db", "web"],
        [0, 1, 2], [3, 4, 5], [1, 1, 1], flags, [7, 9, 10],
    )  # fmt: skip
    evs = blk.events()
    assert evs[0] == Event(
        "in-70", 11, Direction.IN, 0x70, value=1, vm=2, vm_name="web", cpu=3, seq=7
    )
    assert (evs[1].dir, evs[2].size, evs[2].stage, evs[2].skipped) == (
        Direction.OUT,
        2,
        Stage.POST,
        True,
    )
    payload, _ = encode_batch("h", "e", blk, "protobuf")
    batch = events_pb2.EventBatch.FromString(payload)
    assert batch_events(batch) == evs
    assert batch.SerializeToString() == pack_batch("h", "e", evs).SerializeToString()
    body = json.loads(encode_batch("h", "e", blk, "json")[0])
    assert [from_json(o) for o in body["events"]] == evs


def test_a_block_with_rip_and_registers_packs_slices_and_extends() -> None:
    names = ("rax", "rip")
    f = 2 | F_RIP | F_REGS
    blk = Block(
        "p80", [1, 2, 3], [0x80] * 3, [0xFF] * 3, [1] * 3, ["vm"] * 3, [0] * 3, [-1] * 3,
        [1] * 3, [f, f, f], [4, 5, 6], [0x1003] * 3, [10, 0x1003, 11, 0x1003, 12, 0x1003], names,
    )  # fmt: skip
    evs = blk.events()
    assert [(e.rip, e.regs) for e in evs] == [
        (0x1003, {"rax": r, "rip": 0x1003}) for r in (10, 11, 12)
    ]
    payload, _ = encode_batch("h", "e", blk, "protobuf")
    assert batch_events(events_pb2.EventBatch.FromString(payload)) == evs
    first = blk.take(2)
    assert first.events() == evs[:2]
    assert blk.events() == evs[2:]
    plain = Block("p80", [9], [0x80], [1], [1], ["vm"], [0], [-1], [1], [2], [7])
    first.extend(plain)  # a block without registers joins: flags say which events have them
    assert first.events() == [*evs[:2], plain.events()[0]]
    assert first.head(3).events() == first.events()
    assert first.take(1).events() == evs[:1]
    assert first.events() == [evs[1], plain.events()[0]]
