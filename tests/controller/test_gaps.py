"""Sequence checking: out-of-order batches are not gaps, real losses and duplicates are found."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

from agent.events import Event
from agent.model import Direction
from agent.publish.payload import encode_batch
from controller.gaps import GapChecker, SeqTracker
from tests.harness import AgentProc, Broker


def test_out_of_order_within_grace_is_not_a_gap() -> None:
    t = SeqTracker(grace=5.0, started=0.0)
    t.add(1, 0.0)
    t.tick(10.0)  # warm-up over, saw 1: check from the start
    for seq in (2, 4, 5, 3):
        t.add(seq, 11.0)
    assert t.tick(12.0) == []
    assert (t.next, t.missing, t.duplicates) == (6, 0, 0)


def test_a_hole_older_than_grace_is_missing_and_counted_once() -> None:
    t = SeqTracker(grace=2.0, started=0.0)
    t.add(1, 0.0)
    t.tick(3.0)
    t.add(5, 3.0)
    assert t.tick(4.0) == []
    assert t.tick(5.5) == [(2, 4)]
    assert t.tick(9.0) == []
    t.add(3, 9.0)  # too late: already counted lost, now seen again below the watermark
    assert (t.missing, t.duplicates, t.ranges) == (3, 1, [(2, 4)])


def test_duplicates_are_counted_during_and_after_warm_up() -> None:
    t = SeqTracker(grace=1.0, started=0.0)
    assert t.add(1, 0.0)
    assert not t.add(1, 0.1)
    t.tick(2.0)
    assert t.add(2, 2.0)
    assert not t.add(2, 2.1)
    assert t.duplicates == 2


def test_a_watch_started_mid_stream_checks_from_what_it_saw() -> None:
    g = GapChecker(grace=1.0)
    for seq in (900, 902, 901):
        g.add("h", "e1", seq, 0.0)
    g.tick(1.5)
    g.add("h", "e1", 905, 1.6)
    assert g.tick(3.0) == [("h", "e1", 903, 904)]
    g.add("h", "e2", 1, 3.0)  # the agent restarted: a new epoch, tracked apart
    assert set(g.streams) == {("h", "e1"), ("h", "e2")}


async def test_watch_reports_no_false_gaps_on_a_healthy_stream_and_finds_injected_ones(
    agent_factory: Callable[..., AgentProc], mosquitto: Broker
) -> None:
    agent = agent_factory("gaps-live", sim_rate=3000)
    watch = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "controller.cli", "watch", "--broker", mosquitto.address],
        *["--host", "gaps-live", "-o", "json", "--seconds", "7", "--check-gaps"],
        *["--gap-grace", "1"],
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    push = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "controller.cli", "push", "--hosts", agent.address, "--insecure"],
        *["!ioin", "--id", "all-in"],
        stdout=asyncio.subprocess.DEVNULL,
    )
    assert await push.wait() == 0
    await asyncio.sleep(3.5)
    # A forged batch on the host's topic from a fake epoch: seq 1, 2, 2 (dup), 6 (gap 3..5).
    evs = [Event("all-in", 0, Direction.IN, 0x70, seq=s) for s in (1, 2, 2, 6)]
    payload, ctype = encode_batch("gaps-live", "forged", evs, "json")
    pub = await asyncio.create_subprocess_exec(
        *["mosquitto_pub", "-p", str(mosquitto.port), "-q", "1", "-s"],
        *["-t", "ioin/v1/gaps-live/events/all-in", "-D", "publish", "content-type", ctype],
        stdin=asyncio.subprocess.PIPE,
    )
    await pub.communicate(payload)
    _, err_raw = await asyncio.wait_for(watch.communicate(), 30)
    err = err_raw.decode()
    assert watch.returncode == 0, err
    real = [line for line in err.splitlines() if "gap: gaps-live" in line and "forged" not in line]
    assert real == [], "a healthy stream has no gaps"
    assert "gap: gaps-live epoch forged: seq 3..5 missing (3 events)" in err
    assert "duplicate: gaps-live seq 2" in err
