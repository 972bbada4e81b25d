"""Hostile payloads on the events topics (issue 10, item 3): each one used to kill ``ioinctl
watch``; now each is counted as junk and skipped, and the watch goes on printing good batches."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.decode_guard import DEFAULT_LIMITS, EventRefused, check_event, load_json, printable
from agent.events import Event, to_json
from agent.model import Direction
from agent.wire import events_pb2
from controller.cmd_watch import gap_table
from controller.decode import JSON_TYPE, PROTO_TYPE, Junk, decode_batch
from controller.gaps import MAX_JUMP, MAX_STREAMS, GapChecker, SeqTracker
from controller.render import Output
from controller.watch import TALLY_HOOKS, WatchConfig, Watcher

TOPIC = "ioin/v1/h1/events/uart"
ESC = "\x1b"


def good(seq: int = 1, **fields: Any) -> dict[str, Any]:
    ev = to_json(Event("uart", 1_700_000_000_000_000_000, Direction.IN, 0x3F8, seq=seq), "h1", "e")
    return ev | fields


def batch(*events: dict[str, Any], epoch: str = "e") -> bytes:
    return json.dumps({"host": "h1", "epoch": epoch, "events": list(events)}).encode()


def watcher(**kwargs: Any) -> tuple[Watcher, list[str]]:
    lines: list[str] = []
    return Watcher(WatchConfig(**kwargs), lines.append), lines


def deep(levels: int) -> bytes:
    return b'{"host": "h1", "epoch": "e", "events": [' + b"[" * levels + b"]" * levels + b"]}"


@pytest.mark.parametrize("output", [Output.TABLE, Output.JSON])
@pytest.mark.parametrize("levels", [100, 100_000])
def test_deep_json_is_junk_in_both_output_modes(output: Output, levels: int) -> None:
    w, lines = watcher(output=output)
    w.handle(TOPIC, deep(levels), JSON_TYPE)  # 100,000 levels raised RecursionError
    w.handle(TOPIC, deep(levels).replace(b"[[", b"[{"), JSON_TYPE)
    w.handle(TOPIC, batch(good(regs={"rax": [[[[[[1]]]]]]})), JSON_TYPE)
    w.handle(TOPIC, batch(good()), JSON_TYPE)
    assert (w.junk, len(lines)) == (3, 1)


def test_nesting_is_measured_without_counting_brackets_in_strings() -> None:
    doc = load_json(batch(good(vm_name='[[[[[[[[[[{{{{{{{{{{\\"[[[[[[[[')))
    assert doc["events"][0]["vm_name"].startswith("[[[[")
    with pytest.raises(EventRefused, match="'payload' nests 9 deep, over 8"):
        load_json(b"[" * 9 + b"]" * 9)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"ts": 10**30}, "'ts' is out of range 0..18446744073709551615"),
        ({"ts": -1}, "'ts' is out of range"),
        ({"seq": 0}, "'seq' is out of range 1.."),
        ({"port": 70000}, "'port' is out of range 0..65535"),
        ({"size": 3}, "'size' is not one of 1, 2, 4"),
        ({"cpu": -2}, "'cpu' is out of range -1.."),
        ({"value": 2**32}, "'value' is out of range"),
        ({"stage": "all"}, "'stage' is not one of pre, post"),
        ({"hook_id": f"{ESC}[31mred"}, "'hook_id' is not an id"),
        ({"vm_name": "x" * 257}, "'vm_name' is 257 characters long, over 256"),
        ({"data": [0] * 65_537}, "'data' has 65537 elements, over 65536"),
        ({"data": [2**40]}, "'data' is out of range"),
        ({"regs": {"r": -1}}, "'regs' is out of range"),
        ({"regs": {f"r{i}": 0 for i in range(65)}}, "'regs' has 65 registers, over 64"),
        ({"rip": 1.5}, "'rip' is float, not an integer"),
        ({"skipped": 1}, "'skipped' is int, not a boolean"),
    ],
)
def test_every_field_is_range_checked_and_the_refusal_names_it(
    fields: dict[str, Any], reason: str
) -> None:
    with pytest.raises(EventRefused, match=reason.replace("(", r"\(").replace(".", r"\.")):
        check_event(good(**fields), "h1", "e")
    w, lines = watcher()
    w.handle(TOPIC, batch(good(**fields)), JSON_TYPE)  # ts 10**30 raised OverflowError here
    assert (w.junk, lines) == (1, [])


def test_ansi_in_a_protobuf_hook_id_is_refused_and_in_other_text_escaped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    msg = events_pb2.EventBatch(host="h1", epoch="e")
    msg.events.add(seq=1, ts=1, hook_id=f"{ESC}]0;pwned{ESC}\\", dir=1, port=1, size=1)
    with pytest.raises(Junk, match="'hook_id' is not an id"):
        decode_batch(msg.SerializeToString(), PROTO_TYPE, "h1")
    w, lines = watcher()
    w.handle(TOPIC, batch(good(break_id=f"{ESC}[2J")), JSON_TYPE)
    w.handle("ioin/v1/h1/notices", f"dropped {ESC}[2J\u202eevil".encode())
    assert lines[0].endswith("break \\x1b[2J")
    assert lines[1] == "notice h1: dropped \\x1b[2J\\u202eevil"
    w.handle(f"ioin/v1/h1/{ESC}[2J", b"", None)
    assert ESC not in capsys.readouterr().err


def test_printable_bounds_and_escapes() -> None:
    assert printable("a\x00b\x7f\x9bc\u2066") == "a\\x00b\\x7f\\x9bc\\u2066"
    assert printable("x" * 10, 4) == "xxxx…(+6)"
    assert printable("plain é ü 漢") == "plain é ü 漢"


def test_a_forged_epoch_with_seq_2_64_does_not_report_absurd_gaps() -> None:
    w, _ = watcher(check_gaps=True, gap_grace=1.0)
    forged = [good(1), good(2**64 - 1)]
    w.handle(TOPIC, batch(*forged, epoch="forged"), JSON_TYPE)
    w.check_gaps(now=1e12)  # far past the warm-up and grace
    w.handle(TOPIC, batch(good(2**63), epoch="forged"), JSON_TYPE)
    w.check_gaps(now=2e12)
    assert w.gaps is not None
    t = w.gaps.streams[("h1", "forged")]
    assert (t.missing, t.implausible, t.received) == (0, 2, 2)
    assert "2 implausible numbers" in str(gap_table(w.gaps).caption)


def test_a_real_gap_below_the_jump_bound_is_still_counted() -> None:
    t = SeqTracker(grace=1.0, started=0.0)
    t.add(1, 0.0)
    t.tick(2.0)
    t.add(MAX_JUMP, 2.0)
    t.tick(4.0)
    assert (t.missing, t.implausible) == (MAX_JUMP - 2, 0)


def test_oversized_payloads_and_batches_are_refused_before_decoding() -> None:
    big = b"{" + b" " * DEFAULT_LIMITS.max_payload + b"}"
    with pytest.raises(Junk, match="'payload' is 33554434 bytes"):
        decode_batch(big, JSON_TYPE, "h1")
    msg = events_pb2.EventBatch(host="h1", epoch="e")
    msg.columns.seq.extend([1] * (DEFAULT_LIMITS.max_events + 1))
    with pytest.raises(Junk, match="'events' has 100001 events, over 100000"):
        decode_batch(msg.SerializeToString(), PROTO_TYPE, "h1")


def test_forged_epochs_cannot_grow_the_gap_checker_without_bound() -> None:
    gaps = GapChecker(grace=1.0)
    for i in range(MAX_STREAMS + 500):
        gaps.add("h1", f"forged-{i}", 1, 0.0)
    assert (len(gaps.streams), gaps.untracked) == (MAX_STREAMS, 500)
    assert "500 events of streams beyond the first 10000 unchecked" in str(gap_table(gaps).caption)


def test_the_summary_remembers_a_bounded_number_of_hook_ids_per_host() -> None:
    w, _ = watcher()
    for i in range(TALLY_HOOKS + 10):
        w.handle(TOPIC, batch(good(seq=i + 1, hook_id=f"k{i}")), JSON_TYPE)
    tally = w.tally["h1"]
    assert (len(tally.hooks), tally.more_hooks, tally.events) == (TALLY_HOOKS, 10, TALLY_HOOKS + 10)
