from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from agent.backends.sim.backend import AccessGenerator, SimBackend
from agent.config import SimConfig
from agent.events import JSON_KEYS, Event
from agent.hooks.table import HookTable
from agent.model import Direction, Stage
from agent.wire import hooks_pb2


def test_the_generator_is_deterministic_for_a_seed() -> None:
    a, b = AccessGenerator(SimConfig(seed=7)), AccessGenerator(SimConfig(seed=7))
    assert a.take(500) == b.take(500)
    assert AccessGenerator(SimConfig(seed=8)).take(50) != AccessGenerator(SimConfig(seed=7)).take(
        50
    )


def test_the_generator_follows_weights_vms_and_cores() -> None:
    cfg = SimConfig(ports={0x70: 9.0, 0x71: 1.0}, vms=3, cores=4, out_fraction=0.0)
    accesses = AccessGenerator(cfg).take(5000)
    share = sum(a.port == 0x70 for a in accesses) / len(accesses)
    assert 0.85 < share < 0.95
    assert {a.vm for a in accesses} == {1, 2, 3}
    assert {a.core for a in accesses} == {0, 1, 2, 3}
    assert {a.dir for a in accesses} == {Direction.IN}


async def run_sim(table: HookTable, seconds: float = 0.3, rate: float = 5000) -> list[Event]:
    got: list[Event] = []
    notices: list[str] = []
    backend = SimBackend(SimConfig(rate=rate, out_fraction=0.5))
    async with backend:
        task = asyncio.create_task(
            backend.run(table, got.extend, lambda k, f: notices.append(k), lambda: None)
        )
        await asyncio.sleep(seconds)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return got


async def test_actions_are_simulated() -> None:
    table = HookTable()
    table.set(
        hooks_pb2.HookSpec(
            id="set",
            direction=hooks_pb2.DIRECTION_IN,
            port=0x70,
            stage=hooks_pb2.STAGE_ALL,
            set_value=0x41,
        )
    )
    table.set(
        hooks_pb2.HookSpec(
            id="skip", direction=hooks_pb2.DIRECTION_OUT, port=0x71, short_circuit=True
        )
    )
    events = await run_sim(table)
    sets = [e for e in events if e.hook_id == "set"]
    assert {e.stage for e in sets} == {Stage.PRE, Stage.POST}
    assert {e.value_set for e in sets if e.stage is Stage.POST} == {0x41}
    assert {e.value_set for e in sets if e.stage is Stage.PRE} == {None}
    skips = [e for e in events if e.hook_id == "skip"]
    assert skips
    assert all(e.skipped and e.stage is Stage.PRE for e in skips)


async def test_a_break_pauses_the_simulated_vcpu_until_resumed() -> None:
    table = HookTable()
    table.set(
        hooks_pb2.HookSpec(
            id="brk", direction=hooks_pb2.DIRECTION_IN, port=0x3F8, pid=1, core=0, break_=True
        )
    )
    backend = SimBackend(SimConfig(rate=5000))
    got: list[Event] = []
    breaks: list[dict[str, object]] = []
    task = asyncio.create_task(
        backend.run(table, got.extend, lambda k, f: breaks.append(f), lambda: None)
    )
    await asyncio.sleep(0.3)
    assert len(got) == 1  # paused after the first hit
    assert breaks[0]["break_id"] == got[0].break_id
    assert await backend.resume(got[0].break_id, None)
    assert not await backend.resume(got[0].break_id, None)
    await asyncio.sleep(0.3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(got) >= 2


def test_ioind_local_prints_json_with_exactly_the_design_keys() -> None:
    hooks = ["--hook", "!ioin 0x70 core 1", "--hook", "!ioout 0x3f8"]
    flags = ["-o", "json", "--seconds", "1", "--sim-rate", "2000"]
    cmd = [sys.executable, "-m", "agent", "local", *hooks, *flags]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
    objs = [json.loads(line) for line in out.splitlines()]
    assert objs
    assert all(tuple(o) == JSON_KEYS for o in objs)
    assert {(o["dir"], o["port"]) for o in objs} == {("in", 0x70), ("out", 0x3F8)}
    assert {o["vcpu"] for o in objs if o["port"] == 0x70} == {1}
    # batches are per hook, so lines interleave by batch; together the numbers have no gap
    assert sorted(o["seq"] for o in objs) == list(range(1, len(objs) + 1))


def test_ioind_local_refuses_a_bad_hook_naming_the_token() -> None:
    cmd = [sys.executable, "-m", "agent", "local", "--hook", "!ioin 0x3f8 pid zz"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    assert res.returncode == 2
    assert "zz" in res.stderr
    assert res.stdout == ""
