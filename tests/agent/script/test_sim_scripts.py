"""condition { } and script { } on the sim backend: their meaning on events (issue 13, item 2)."""

from __future__ import annotations

import asyncio

import pytest

from agent.backends.sim.backend import SimBackend
from agent.backends.testing import ListSink
from agent.config import SimConfig
from agent.events import Event
from agent.hooks import lang
from agent.hooks.table import HookTable
from agent.model import Stage
from agent.notices import NoticeKind

CONFIG = SimConfig(rate=5000, out_fraction=0.5, seed=3)


def step(*commands: str, n: int = 4000) -> list[Event]:
    table = HookTable()
    for i, command in enumerate(commands):
        table.set(lang.parse(command, hook_id=f"h{i}"))
    blocks, events = SimBackend(CONFIG)._step(table, n)
    return [e for b in blocks for e in b.events()] + events


def test_a_pure_condition_filters_the_fast_path_blocks() -> None:
    everything = step("!ioout")
    only = step("!ioout condition { $context == 3f8 && @al != 0 }")
    want = [(e.port, e.value, e.vm, e.vcpu) for e in everything if e.port == 0x3F8 and e.value]
    assert [(e.port, e.value, e.vm, e.vcpu) for e in only] == want
    assert want  # the seed gives some of each


@pytest.mark.parametrize(
    "condition",
    ["@al == 0", "@al != 0", "@rax > 40", "$time != 0", "@dx == 3f8", "$ip == 0", "$core == 1"],
)
@pytest.mark.parametrize("hook", ["!ioin", "!ioout"])
def test_a_condition_means_the_same_with_and_without_a_script(hook: str, condition: str) -> None:
    """The numpy path (a pure condition alone) and the per-hit path (the same condition with a
    script) accept the same accesses: @rax is 0 before a simulated IN is read, the value of an
    OUT; @rdx is the port; every pseudo-register has a column."""
    columnar = step(f"{hook} condition {{ {condition} }}")
    per_hit = step(f"{hook} condition {{ {condition} }} script {{ x = 1; }}")
    assert [(e.dir, e.port, e.value, e.vm, e.vcpu) for e in columnar] == [
        (e.dir, e.port, e.value, e.vm, e.vcpu) for e in per_hit
    ]


def test_before_a_simulated_in_is_read_rax_is_zero() -> None:
    """HyperDbg's pre stage runs before the IN: RAX holds what it held before, which on the sim
    is 0 (its vCPUs have no other registers); at the post stage it holds the value read."""
    everything = step("!ioin")
    assert len(step("!ioin condition { @rax == 0 }")) == len(everything)
    assert step("!ioin condition { @al != 0 }") == []
    post = step("!ioin stage post condition { @al != 0 }")
    assert [e.value for e in post] == [e.value for e in everything if e.value]


def test_a_condition_gates_the_hooks_actions() -> None:
    events = step("!ioin 70 stage post set 41 condition { @al < 80 }")
    assert events
    assert all(e.value_set == 0x41 for e in events)
    everything = step("!ioin 70 stage post")
    assert len(events) == sum(1 for e in everything if e.value < 0x80)


def test_a_post_stage_script_changes_what_the_in_reads() -> None:
    events = step("!ioin 70 stage post script { if (@al >= 80) { @al = 7f; } }")
    plain = step("!ioin 70 stage post")
    assert [e.value for e in events] == [min(e.value, 0x7F) for e in plain]
    changed = [e.value_set is not None for e in events]
    assert changed == [p.value >= 0x80 for p in plain]


def test_event_sc_in_the_pre_stage_fakes_the_in() -> None:
    events = step("!ioin 71 stage all script { if ($event_stage == 0) { @al = 99; event_sc(1); } }")
    assert events
    assert all(e.stage is Stage.PRE and e.skipped and e.value == 0x99 for e in events)


def test_printf_output_travels_in_the_event() -> None:
    events = step('!ioout 3f8 script { .n = .n + 1; printf("%d: %x\\n", .n, @al); }')
    assert events
    assert [e.output for e in events[:3]] == [
        f"{i + 1}: {e.value:x}\n" for i, e in enumerate(events[:3])
    ]


async def test_pause_pauses_the_vcpu_like_break_and_aborts_are_announced() -> None:
    table = HookTable()
    table.set(lang.parse("!ioin 3f8 pid 1 core 0 script { pause(); }", hook_id="p"))
    table.set(lang.parse("!ioin 70 script { x = 1 / ($context - 70); }", hook_id="z"))
    backend = SimBackend(SimConfig(rate=5000))
    sink = ListSink()
    task = asyncio.create_task(backend.run(table, sink, lambda: None))
    await asyncio.sleep(0.3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    paused = [e for e in sink.received if e.hook_id == "p"]
    assert len(paused) == 1
    assert paused[0].break_id
    aborts = sink.of_kind(NoticeKind.SCRIPT_ABORT)
    assert aborts
    assert aborts[0].fields["hook_id"] == "z"
    assert aborts[0].fields["reason"] == "division by zero"
    # an aborted script has no effect: its hits still make (unchanged, silent) events
    zs = [e for e in sink.received if e.hook_id == "z"]
    assert zs
    assert all(e.output == "" and e.value_set is None for e in zs)


def test_the_event_line_shows_the_output_quoted_on_one_line() -> None:
    from agent.eventline import event_line
    from agent.events import to_json

    (ev,) = step('!ioin 3f8 script { printf("al %x\\nend", @al); }', n=40)[:1]
    line = event_line(to_json(ev, "h", "e"))
    assert line.endswith(' output "al 0\\nend"')
    assert "\n" not in line


def test_output_travels_on_the_wire_and_keeps_the_event_out_of_the_columns() -> None:
    from agent.batch import batch_events, pack_batch

    events = step('!ioin 3f8 script { if (.n < 2) { printf("n=%d", .n); } .n = .n + 1; }')
    for i, ev in enumerate(events):
        ev.seq = i + 1
    batch = pack_batch("h", "e", events)
    assert [e.output for e in batch.events] == ["n=0", "n=1"]  # as messages, not columns
    assert [e.output for e in batch_events(batch)] == [e.output for e in events]
