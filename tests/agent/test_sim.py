from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

from agent.backends.sim.backend import SimBackend
from agent.backends.sim.generator import AccessGenerator
from agent.backends.testing import ListSink
from agent.columns import Block
from agent.config import SimConfig
from agent.events import JSON_KEYS, Event
from agent.hooks import lang
from agent.hooks.table import HookTable
from agent.model import Direction, Stage
from agent.pipeline import Pipeline
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
    sink = ListSink()
    backend = SimBackend(SimConfig(rate=rate, out_fraction=0.5))
    async with backend:
        task = asyncio.create_task(backend.run(table, sink, lambda: None))
        await asyncio.sleep(seconds)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return sink.received


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
    sink = ListSink()
    task = asyncio.create_task(backend.run(table, sink, lambda: None))
    await asyncio.sleep(0.3)
    got = sink.received
    breaks = [f for _, f in sink.notices]
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


def test_plain_hits_become_blocks_with_the_fields_events_would_have() -> None:
    table = HookTable()
    table.set(hooks_pb2.HookSpec(id="in", direction=hooks_pb2.DIRECTION_IN))
    table.set(hooks_pb2.HookSpec(id="com", direction=hooks_pb2.DIRECTION_OUT, port=0x3F8))
    table.set(
        hooks_pb2.HookSpec(id="sc", direction=hooks_pb2.DIRECTION_IN, port=0x70, short_circuit=True)
    )
    cfg = SimConfig(seed=3, out_fraction=0.5)
    blocks, events = SimBackend(cfg)._step(table, 3000)
    got = {
        b.hook_id: [(e.dir, e.port, e.vm, e.vm_name, e.vcpu, e.cpu, e.value) for e in b.events()]
        for b in blocks
    }
    accesses = AccessGenerator(cfg).take(3000)
    want = [(a.dir, a.port, a.vm, f"sim-{a.vm}", a.core, a.core, a.value) for a in accesses]
    assert got == {
        "in": [w for w in want if w[0] is Direction.IN],
        "com": [w for w in want if w[0] is Direction.OUT and w[1] == 0x3F8],
    }
    assert all((e.size, e.count, e.stage) == (1, 1, Stage.PRE) for b in blocks for e in b.events())
    assert len(events) == sum(a.dir is Direction.IN and a.port == 0x70 for a in accesses) > 0
    assert {(e.hook_id, e.skipped) for e in events} == {("sc", True)}


def test_a_hook_that_gains_an_action_leaves_the_fast_path_at_once() -> None:
    table = HookTable()
    table.set(hooks_pb2.HookSpec(id="h", direction=hooks_pb2.DIRECTION_IN, port=0x70))
    backend = SimBackend(SimConfig())
    blocks, events = backend._step(table, 500)
    assert ([b.hook_id for b in blocks], events) == (["h"], [])
    table.set(
        hooks_pb2.HookSpec(id="h", direction=hooks_pb2.DIRECTION_IN, port=0x70, short_circuit=True)
    )
    blocks, events = backend._step(table, 500)
    assert blocks == []
    assert events
    assert all(e.skipped for e in events)


async def test_a_pipeline_gets_blocks_and_numbers_them_gap_free() -> None:
    table = HookTable()
    table.set(hooks_pb2.HookSpec(id="in", direction=hooks_pb2.DIRECTION_IN))
    table.set(
        hooks_pb2.HookSpec(id="set", direction=hooks_pb2.DIRECTION_IN, port=0x70, set_value=1)
    )
    out: list[list[Event] | Block] = []
    pipeline = Pipeline(table, lambda h, b: out.append(b), batch_max=100, batch_ms=10)
    backend = SimBackend(SimConfig(rate=20_000))
    task = asyncio.create_task(backend.run(table, pipeline, lambda: None))
    await asyncio.sleep(0.3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    pipeline.flush()
    assert any(isinstance(b, Block) for b in out)
    assert any(isinstance(b, list) for b in out)
    seqs = [s for b in out for s in (b.seq if isinstance(b, Block) else [e.seq for e in b])]
    assert sorted(seqs) == list(range(1, pipeline.seq + 1))
    assert pipeline.seq == pipeline.matched > 0


async def test_a_sink_that_is_not_a_pipeline_gets_plain_hits_as_events() -> None:
    table = HookTable()
    table.set(hooks_pb2.HookSpec(id="in", direction=hooks_pb2.DIRECTION_IN, port=0x70))
    events = await run_sim(table)
    assert events
    assert {(e.hook_id, e.dir, e.port, e.seq) for e in events} == {("in", Direction.IN, 0x70, 0)}


class _Signalling(ListSink):
    def __init__(self) -> None:
        super().__init__()
        self.got = asyncio.Event()

    def events(self, events: list[Event]) -> None:
        super().events(events)
        self.got.set()


async def test_while_no_hook_can_match_the_loop_sleeps_and_wakes_for_a_hook() -> None:
    """Hooks on ports the simulated guests never touch: the loop waits (for a hook change, or
    a second) instead of waking every 10 ms, counting the accesses the guests made meanwhile;
    a hook that can match wakes it at once."""
    cfg = SimConfig(rate=100_000, ports={0x3F8: 1.0}, out_fraction=0.0, seed=5)
    table = HookTable()
    table.set(lang.parse("!ioin 0xe9"))  # never touched
    sink, backend = _Signalling(), SimBackend(cfg)
    async with backend:
        task = asyncio.create_task(backend.run(table, sink, lambda: None))
        await asyncio.sleep(0.3)
        assert (backend.accesses, sink.received) == (0, [])  # asleep: nothing drawn or built
        table.set(lang.parse("!ioin 0x3f8", hook_id="uart"))
        woken = time.monotonic()
        backend.hooks_changed()  # as the hook service does: the loop wakes at once
        await asyncio.wait_for(sink.got.wait(), 1.0)
        assert time.monotonic() - woken < 0.2
        assert backend.accesses >= 20_000  # the ~0.3 s asleep were counted at the rate
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert {(e.hook_id, e.port) for e in sink.received} == {("uart", 0x3F8)}
