"""$event_id, $time and $date as HyperDbg gives them (review item 5): the hook's number, and the
clock's text for printf's %s, without guest memory, on every path (per hit, columns, eval)."""

from __future__ import annotations

import re
import subprocess
import sys
import time

from agent.model import Capability
from agent.script.hit import Hit, filter_block, run_hit
from agent.script.hook import HookScript, event_id
from agent.script.runtime import clock_text
from tests.agent.script.test_sim_scripts import step

DATE_TIME = re.compile(r"(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3})\n")


def hit() -> Hit:
    return Hit(port=0x3F8, size=1, inbound=True, post=True, value=0x41, ts=time.time_ns())


def test_event_id_is_the_hooks_stable_number() -> None:
    assert event_id("in-3f8-785de70e") == event_id("in-3f8-785de70e") != 0
    assert event_id("a") != event_id("b")
    hs = HookScript("in-3f8-785de70e", script='printf("%x\\n", $event_id);')
    assert run_hit(hs, hit()).output == f"{event_id('in-3f8-785de70e'):x}\n"


def test_event_id_means_the_same_in_a_condition_per_hit_and_over_columns() -> None:
    wanted = f"$event_id == 0n{event_id('h0')}"  # step() names its first hook h0
    assert HookScript("h0", condition=wanted).columnar
    everything = step("!ioout")
    assert len(step(f"!ioout condition {{ {wanted} }}")) == len(everything)  # columns
    assert len(step(f"!ioout condition {{ {wanted} }} script {{ x = 1; }}")) == len(everything)
    assert not step(f"!ioout condition {{ $event_id == 0n{event_id('other')} }}")


def test_printf_of_date_and_time_prints_the_clock_without_memory() -> None:
    hs = HookScript("h", script='printf("%s %s\\n", $date, $time);')
    assert Capability.MEMORY not in hs.needs
    before = time.time_ns()
    out = run_hit(hs, hit()).output
    after = time.time_ns()
    match = DATE_TIME.fullmatch(out)
    assert match is not None, out
    assert match[1] in {clock_text("date", before), clock_text("date", after)}
    assert clock_text("time", before) <= match[2] <= clock_text("time", after)


def test_the_sim_prints_the_clock_in_each_event() -> None:
    events = step('!ioout 3f8 script { printf("%s %s\\n", $date, $time); }')
    assert events
    assert all(DATE_TIME.fullmatch(e.output) for e in events)


def test_time_and_date_are_handles_not_numbers_as_in_hyperdbg() -> None:
    hs = HookScript("h", script='printf("%x %x\\n", $time, $date);')
    first = run_hit(hs, hit()).output
    time.sleep(0.002)
    assert run_hit(hs, hit()).output == first  # the same nonzero handle on every hit
    assert first != "0 0\n"
    columnar = HookScript("h", condition="$time != 0 && $date != 0")
    from agent.batch import Block

    block = Block("h", [1], [0x3F8], [1], [1], ["a"], [0], [0], [1], [2])
    assert filter_block(columnar, block) is block


def test_eval_prints_date_and_time() -> None:
    script = 'printf("%s %s\\n", $date, $time);'
    run = subprocess.run(
        [sys.executable, "-m", "controller.cli", "eval", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert DATE_TIME.match(run.stdout + ("\n" if not run.stdout.endswith("\n") else ""))
