"""Script conditions on the sim backend: the columnar (numpy) path against no condition.

Measured in one run, on this machine, with the sim generating as fast as it can (its ``_step``,
the hot path that matches accesses against the table and builds the blocks of plain events):
- the flood with ``!ioin`` (every IN port hooked), no condition: the baseline;
- the same flood with ``condition { $context == 3f8 && @al != 0 }``, evaluated over each block
  with numpy. Target (issue 13): >= 0.8 of the baseline. Before a simulated IN is read (the pre
  stage) ``@al`` is 0, so this one passes nothing; ``$context == 3f8 && $core != 0``, the same
  shape, passes some accesses, so the events are built too;
- the same condition evaluated once per event in Python (what the columnar path avoids), for
  comparison.
The bench counts accesses generated per second (not events): the condition drops most events,
and work after the backend would only make the condition look cheaper.

kvm (/dev/kvm, binutils, cc): bench_kvm.py's guest looping on ``in al, dx`` from open-bus port
0x80, with ``!ioin 80 condition { @al == 1 }`` (always false: the C loop evaluates it and answers
the exit itself), against bench_kvm's minimal C ``KVM_RUN`` loop, best of interleaved rounds.
Target: >= 0.9.

kvm-trace (root, tracefs, QEMU; skipped with the reason elsewhere): bench_trace.py's guest
looping on ``in al, dx`` from port 0x80 (an unassigned port: it reads 0xff), measured by its own
counter, without an agent and with ``!ioin 80 condition { @al != ff }`` (always false, pushed
into the kernel filter). Target: >= 0.97 of the rate without an agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.backends.kvm import KvmBackend
from agent.backends.kvm.guests.build import GUEST_DIR, assemble
from agent.backends.kvm_trace import KvmTraceBackend
from agent.backends.sim.backend import SimBackend
from agent.config import KvmConfig, SimConfig, TraceConfig, VmConfig
from agent.hooks import lang
from agent.hooks.table import HookTable
from agent.script import compile_condition
from bench.bench_kvm import Counted, build_c_loop, c_loop_rate
from bench.bench_trace import LOOP_PORT, CountingSink, Guest, build_guest, missing, window
from bench.common import Row, emit

BENCH = "script"
CONDITION = "$context == 3f8 && @al != 0"  # the issue's; false before an IN is read (pre stage)
PASSING = "$context == 3f8 && $core != 0"  # the same shape, true for some: events are built too
STEP = 4096
SECONDS = 2.0
ROUNDS = 3


def flood(command: str, seconds: float = SECONDS) -> tuple[float, int]:
    """(accesses/s, events) of the sim's hot path with ``command`` set."""
    backend = SimBackend(SimConfig(rate=1e9, vms=2, cores=2, seed=7))
    table = HookTable()
    table.set(lang.parse(command))
    backend._step(table, STEP)  # warm the match cache
    n = events = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        blocks, evs = backend._step(table, STEP)
        n += STEP
        events += sum(len(b.port) for b in blocks) + len(evs)
    return n / elapsed, events


def per_event_python(seconds: float = 1.0) -> float:
    """Evaluations/s of the condition once per event with the Python evaluator."""
    program = compile_condition(CONDITION)
    n = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for i in range(1000):
            program.run({"rax": i & 0xFF}, {"context": 0x3F8 if i & 1 else 0x70}, {})
        n += 1000
    return n / elapsed


async def traced_window(guest: Guest, condition: str) -> float:
    """The guest's IN/s while kvm-trace hooks its port with ``condition``."""
    table = HookTable()
    command = f"!ioin {LOOP_PORT:#x} pid 0n{guest.pid} condition {{ {condition} }}"
    table.set(lang.parse(command, hook_id="bench"))
    sink = CountingSink()
    with tempfile.TemporaryDirectory() as lock_dir:
        backend = KvmTraceBackend(TraceConfig(), "bench-script", lock_dir=Path(lock_dir))
        async with backend:
            ready = asyncio.Event()
            task = asyncio.create_task(backend.run(table, sink, ready.set))
            await ready.wait()
            rate = (await window(guest, sink))[0]
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):  # the task we just cancelled
                await task
    return rate


async def kvm_rate(image: Path, entry: int, command: str, seconds: float = 2.0) -> float:
    """IN exits/s of the looping guest under the kvm backend with ``command`` set."""
    table = HookTable()
    table.set(lang.parse(command, hook_id="bench"))
    vm = VmConfig(name="bench", image=str(image), mode="real", entry=entry)
    ready = asyncio.Event()
    async with KvmBackend(KvmConfig(vms=(vm,), on_fault="keep")) as backend:
        task = asyncio.create_task(backend.run(table, Counted(), ready.set))
        await ready.wait()
        await asyncio.sleep(0.3)  # warm up: the first hooked exits teach the C loop
        start_exits, start = backend.counters()["kvm_io_exits"], time.monotonic()
        await asyncio.sleep(seconds)
        exits, elapsed = backend.counters()["kvm_io_exits"] - start_exits, time.monotonic() - start
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return exits / elapsed


def kvm_rows() -> list[Row]:
    if not Path("/dev/kvm").exists():
        return [Row(BENCH, "kvm skipped: no /dev/kvm", 0, "")]
    command = "!ioin 80 condition { @al == 1 }"
    c_best = cond_best = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        binary = build_c_loop(Path(tmp))
        guest = assemble((GUEST_DIR / "in_loop.S").read_text(), "in_loop", Path(tmp))
        for _ in range(ROUNDS):
            c_best = max(c_best, c_loop_rate(binary, 2.0))
            cond_best = max(cond_best, asyncio.run(kvm_rate(guest.path, guest.entry, command)))
    ratio = cond_best / c_best
    return [
        Row(BENCH, "kvm: C KVM_RUN loop", c_best, "exits/s", 1.0, "itself"),
        Row(
            BENCH,
            f"kvm: {command} (false, in the C loop)",
            cond_best,
            "exits/s",
            ratio,
            "C KVM_RUN loop",
            ">= 0.9",
            ratio >= 0.9,
        ),
    ]


async def trace_rows() -> list[Row]:
    reason = missing()
    if reason:
        return [Row(BENCH, f"kvm-trace skipped: {reason}", 0, "")]
    none: list[float] = []
    cond: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        guest = Guest(build_guest(Path(tmp)), Path(tmp))
        try:
            await window(guest, None)  # warm-up
            for r in range(ROUNDS):  # alternate, rotating which goes first
                if r % 2:
                    cond.append(await traced_window(guest, "@al != ff"))
                none.append((await window(guest, None))[0])
                if not r % 2:
                    cond.append(await traced_window(guest, "@al != ff"))
        finally:
            guest.close()
    base, rate = max(none), max(cond)  # best of each, as the other rows: noise hits both
    return [
        Row(BENCH, "kvm-trace: guest IN/s, no agent", base, "IN/s", 1.0, "itself"),
        Row(
            BENCH,
            f"kvm-trace: guest IN/s, !ioin {LOOP_PORT:x} condition {{ @al != ff }} (false)",
            rate,
            "IN/s",
            rate / base,
            "no agent",
            ">= 0.97",
            rate / base >= 0.97,
        ),
    ]


def main() -> None:
    # interleaved rounds, best of each: other work on the machine hits every case alike
    best: dict[str, tuple[float, int]] = {}
    for _ in range(ROUNDS):
        for case in (
            "!ioin",
            f"!ioin condition {{ {CONDITION} }}",
            f"!ioin condition {{ {PASSING} }}",
        ):
            rate, events = flood(case)
            if rate > best.get(case, (0.0, 0))[0]:
                best[case] = (rate, events)
    (base, base_events), *conds = best.values()
    scalar = per_event_python()
    rows = [Row(BENCH, "sim flood, !ioin, no condition", base, "accesses/s", 1.0, "itself")]
    for text, (cond, cond_events) in zip((CONDITION, PASSING), conds, strict=True):
        ratio = cond / base
        passed = (cond_events / cond) / (base_events / base) if base_events and cond else 0.0
        rows += [
            Row(
                BENCH,
                f"sim flood, condition {{ {text} }} (numpy, per block)",
                cond,
                "accesses/s",
                ratio,
                "no condition",
                ">= 0.8",
                ratio >= 0.8,
            ),
            Row(BENCH, "  events per access, condition / none", passed, "", passed, "none"),
        ]
    rows.append(
        Row(BENCH, "the condition per event in Python", scalar, "evals/s", scalar / base, "flood")
    )
    rows += kvm_rows()
    rows += asyncio.run(trace_rows())
    emit(rows)


if __name__ == "__main__":
    main()
