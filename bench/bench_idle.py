"""Idle cost: an agent with hooks set and nothing matching, on every backend (issue 11, item 7).

Each case starts a real ``ioind`` (and a mosquitto for it), sets two hooks through ``ioinctl``,
lets it settle, then reads the process's CPU time from /proc over a window: the idle cost in
percent of one core. Target: ≤ 0.2 % on every backend.

- ``sim``: the simulated guests do nothing (``rate = 0``), and at ``rate = 10`` and
  ``rate = 2,000`` (twice the default) they touch only ports no hook watches;
- ``kvm``: no VM running (needs /dev/kvm);
- ``kvm-trace``: the kernel filter keeps every unhooked port out of user space (needs root and
  tracefs with ``kvm:kvm_pio``).

A backend this machine cannot run is reported as skipped on stderr, not measured.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Row, emit
from tests.harness import Broker, start_agent, start_broker

TARGET_PERCENT = 0.2
SETTLE_S = 3.0
WINDOW_S = float(os.environ.get("IOIN_IDLE_WINDOW", "20"))
CLK_TCK = os.sysconf("SC_CLK_TCK")
HOOKS = ["!ioin 0xe9", "!ioout 0x2f8"]  # ports neither the sim's guests nor an idle host touch
# (case, backend, sim rate)
CASES = [
    ("sim, guests idle (rate 0)", "sim", 0.0),
    ("sim, unhooked ports only (rate 10/s)", "sim", 10.0),
    ("sim, unhooked ports only (rate 2,000/s)", "sim", 2000.0),
    ("kvm, no VM running", "kvm", 0.0),
    ("kvm-trace, no hooked port touched", "kvm-trace", 0.0),
]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime: proc(5)


def runnable(backend: str) -> str:
    """Why ``backend`` cannot run here ("" when it can)."""
    if backend == "kvm" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "no usable /dev/kvm"
    if backend == "kvm-trace":
        if os.geteuid() != 0:
            return "not root"
        if not Path("/sys/kernel/tracing/events/kvm/kvm_pio").exists():
            return "no tracefs with kvm:kvm_pio"
    return ""


def measure(backend: str, rate: float, broker: Broker, workdir: Path) -> float:
    agent = start_agent(f"idle-{backend}", broker, workdir, backend=backend, sim_rate=rate)
    try:
        for command in HOOKS:
            argv = [sys.executable, "-m", "controller.cli", "push", command]
            argv += ["--hosts", agent.address, "--insecure", "-o", "json"]
            subprocess.run(argv, check=True, capture_output=True, timeout=60)
        time.sleep(SETTLE_S)
        before, start = cpu_seconds(agent.pid), time.monotonic()
        time.sleep(WINDOW_S)
        used, took = cpu_seconds(agent.pid) - before, time.monotonic() - start
        return 100.0 * used / took
    finally:
        agent.stop()


def main() -> int:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="ioin-idle-") as tmp:
        broker = start_broker(Path(tmp) / "mosquitto")
        try:
            for i, (case, backend, rate) in enumerate(CASES):
                why = runnable(backend)
                if why:
                    print(f"idle: {case}: skipped ({why})", file=sys.stderr)
                    continue
                percent = measure(backend, rate, broker, Path(tmp) / f"agent-{i}")
                rows.append(
                    Row(
                        "idle",
                        case,
                        percent,
                        "% of a core",
                        percent / TARGET_PERCENT,
                        f"target {TARGET_PERCENT} %",
                        f"<= {TARGET_PERCENT} %",
                        percent <= TARGET_PERCENT,
                    )
                )
        finally:
            broker.stop()
    emit(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
