"""Benchmark of the ``kvm`` backend's exit loop: ``python bench/bench_kvm.py [--seconds S]``.

A real-mode guest loops on ``in al, dx`` (port 0x80, open bus), one VM exit per iteration. We
measure IN exits per second through the backend with (a) no hook, (b) a hook on another port,
(c) a hook on the looped port whose every event reaches the sink, and compare each with a minimal
C ``KVM_RUN`` loop (``bench/kvm_loop.c``, compiled here with ``cc``) run in the same invocation.
Rounds interleave C and Python runs and the best of each is kept, so a noisy neighbour on the
host hurts both sides alike. Prints one table; exits non-zero only when something cannot run.

Delivery in (c) stops at the backend's sink for now; ``deliver`` is the seam where an MQTT path
(``--mqtt HOST:PORT``, publish through the agent's publisher and count what a subscriber
receives) plugs in.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.backends.kvm import KvmBackend
from agent.backends.kvm.guests.build import GUEST_DIR, Guest, assemble
from agent.config import KvmConfig, VmConfig
from agent.events import Event
from agent.hooks.table import HookTable
from agent.wire import hooks_pb2

HERE = Path(__file__).resolve().parent
LOOP_PORT = 0x80


@dataclass
class Result:
    case: str
    rate: float
    events: int = 0
    expected: int = 0


def c_loop_rate(binary: Path, seconds: float) -> float:
    out = subprocess.run([str(binary), str(seconds), hex(LOOP_PORT)], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    return float(out.split("rate=")[1])


def build_c_loop(tmp: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        sys.exit("bench_kvm: no C compiler (cc) to build the baseline loop")
    binary = tmp / "kvm_loop"
    subprocess.run([cc, "-O2", "-o", str(binary), str(HERE / "kvm_loop.c")], check=True)
    return binary


def table_for(case: str) -> HookTable:
    table = HookTable()
    if case != "no hook":
        port = LOOP_PORT if case == "hook on looped port" else LOOP_PORT + 1
        spec = hooks_pb2.HookSpec(id="bench", direction=hooks_pb2.DIRECTION_IN, port=port)
        table.set(spec)
    return table


async def python_rate(guest: Guest, case: str, seconds: float) -> Result:
    """Exits/s of the looping guest under the backend, with ``case``'s hook table."""
    received = 0

    def deliver(batch: list[Event]) -> None:  # the sink; an MQTT publisher goes here
        nonlocal received
        received += len(batch)

    vm = VmConfig(name="bench", image=str(guest.path), mode="real", entry=guest.entry)
    config = KvmConfig(vms=(vm,), on_fault="keep")
    ready = asyncio.Event()
    async with KvmBackend(config) as backend:
        task = asyncio.create_task(
            backend.run(table_for(case), deliver, lambda k, f: None, ready.set)
        )
        await ready.wait()
        await asyncio.sleep(0.3)  # warm up
        start_exits, start = backend.counters()["kvm_io_exits"], time.monotonic()
        await asyncio.sleep(seconds)
        exits, elapsed = backend.counters()["kvm_io_exits"] - start_exits, time.monotonic() - start
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        total = backend.counters()["kvm_io_exits"]
        await asyncio.sleep(0.05)  # the last batches queued on the loop
    expected = total if case == "hook on looped port" else 0
    return Result(case, exits / elapsed, received, expected)


def best(runs: list[Callable[[], float]], rounds: int) -> list[float]:
    out = [0.0] * len(runs)
    for _ in range(rounds):
        for i, run in enumerate(runs):
            out[i] = max(out[i], run())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds, best kept")
    args = parser.parse_args()
    cases = ("no hook", "hook on another port", "hook on looped port")
    with tempfile.TemporaryDirectory() as tmp:
        binary = build_c_loop(Path(tmp))
        guest = assemble((GUEST_DIR / "in_loop.S").read_text(), "in_loop", Path(tmp))
        results: dict[str, Result] = {}
        c_best = 0.0
        for _ in range(args.rounds):
            c_best = max(c_best, c_loop_rate(binary, args.seconds))
            for case in cases:
                r = asyncio.run(python_rate(guest, case, args.seconds))
                if case not in results or r.rate > results[case].rate:
                    results[case] = r
    print(f"{'case':<28}{'exits/s':>12}{'ratio to C':>12}{'events':>12}{'lost':>8}")
    print(f"{'C KVM_RUN loop':<28}{c_best:>12.0f}{1.0:>12.2f}{'':>12}{'':>8}")
    for case in cases:
        r = results[case]
        lost = f"{r.expected - r.events}" if r.expected else ""
        events = f"{r.events}" if r.expected else ""
        print(f"{'(' + 'abc'[cases.index(case)] + ') ' + case:<28}{r.rate:>12.0f}"
              f"{r.rate / c_best:>12.2f}{events:>12}{lost:>8}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
