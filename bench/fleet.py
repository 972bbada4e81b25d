"""The fleet at scale: ``ioinctl`` against N real agents over N mutual-TLS connections.

``python bench/fleet.py [--sizes 10,100,1000] [--per-process 125] [--json]``

For each N it starts N hollow agents (bench/hollow.py: the real servicer, hook table and hook
store, each with its own gRPC server, port and certificate; several per process), writes an
inventory naming each with its own certificate's CA, and runs the real ``ioinctl`` as a user
would, measuring:

- ``status`` as the agents' first contact (its own row: an agent's first call costs it more,
  once per process); then ``push`` of one hook; ``apply`` of a 3-hook policy, first run and
  idempotent re-run; ``hooks list``; ``status``;
- for each: the controller's wall time (process start to exit), its CPU (user + system) and
  peak RSS (``wait4``), the fan-out's own time (the summary's ``elapsed_s``), and the CPU the
  agents' processes spent answering.

Targets at N = 1,000 (issue 11): push ≤ 2 s, first apply ≤ 4 s, re-apply ≤ 2 s, RSS ≤ 200 MB.
Each row's ratio is its time over the same command's time at the smallest N.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.identity import Role
from bench.common import Row, emit
from controller.pki import init_ca, issue_agent, issue_user

__all__ = ["main"]

POLICY = """
[[policy]]
name = "bench"
hooks = ["!ioin 0x3f8", "!ioout 0x3f8 rate 100", "!ioin 0x71 core 1"]
"""
# (label, argv after `ioinctl`, target wall time at 1,000 agents in seconds)
COMMANDS: list[tuple[str, list[str], float | None]] = [
    # An agent's first call from any controller costs it more (its first TLS session, its cold
    # Python paths): paid once per agent process, not per command. Measured first, on its own
    # row, so the rows after it measure the controller against agents that have been up.
    ("status (first contact)", ["status"], None),
    ("push", ["push", "!ioin 0x60", "--id", "bench-push"], 2.0),
    ("apply (first)", ["apply", "{policy}"], 4.0),
    ("apply (re-run)", ["apply", "{policy}"], 2.0),
    ("hooks list", ["hooks", "list"], None),
    ("status", ["status"], None),
]
RSS_TARGET_MB = 200.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Measured:
    wall: float
    cpu: float
    rss_mb: float
    fanout: float
    agents_cpu: float
    ok: int


class HollowFleet:
    """N hollow agents in ceil(N / per_process) processes, and their inventory."""

    def __init__(self, n: int, per_process: int, workdir: Path) -> None:
        self.n, self.workdir = n, workdir
        self.pki = workdir / "pki"  # made as `ioinctl pki` makes a fleet's: roles in certificates
        self.ca = init_ca(self.pki, "bench-ca").cert
        user = issue_user(self.pki, "ioinctl", Role.ADMIN)
        self.client = (user.cert, user.key)
        self.procs: list[subprocess.Popen[str]] = []
        self.ports: dict[str, int] = {}
        names = [f"hollow-{i:04d}" for i in range(n)]
        for first in range(0, n, per_process):
            self._spawn(names[first : first + per_process], first // per_process)

    def _spawn(self, names: list[str], index: int) -> None:
        agents = []
        for name in names:
            issued = issue_agent(self.pki, name, ["127.0.0.1"])
            cert, key = issued.cert, issued.key
            agents.append(
                {
                    "name": name,
                    "cert": str(cert),
                    "key": str(key),
                    "state_dir": str(self.workdir / "state" / name),
                }
            )
        spec = self.workdir / f"hollow-{index}.json"
        spec.write_text(json.dumps({"ca": str(self.ca), "agents": agents}))
        read, write = os.pipe()
        hollow = [sys.executable, str(Path(__file__).parent / "hollow.py"), str(spec), str(write)]
        log_path = self.workdir / f"hollow-{index}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                hollow, stdin=subprocess.PIPE, stdout=log, stderr=log, pass_fds=(write,), text=True
            )
        os.close(write)
        with os.fdopen(read) as ready:
            line = ready.readline()
        if not line:
            raise RuntimeError(f"hollow process {index} died: see {log_path}")
        self.ports |= json.loads(line)["ports"]
        self.procs.append(proc)

    def inventory(self) -> Path:
        cert, key = self.client
        lines = [f'[defaults]\nca = "{self.ca}"\ncert = "{cert}"\nkey = "{key}"\n']
        for name, port in sorted(self.ports.items()):
            lines.append(f'[[agent]]\nname = "{name}"\naddress = "127.0.0.1:{port}"\n')
        path = self.workdir / "fleet.toml"
        path.write_text("".join(lines))
        return path

    def cpu(self) -> float:
        """CPU seconds the hollow processes have used so far."""
        total = 0
        for p in self.procs:
            fields = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime: proc(5)
        return total / CLK_TCK

    def close(self) -> None:
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.close()
        for p in self.procs:
            p.wait(60)


def run_ioinctl(argv: list[str], fleet: HollowFleet) -> Measured:
    """Run ``ioinctl argv -o json`` and measure it (``wait4`` gives the child's own rusage)."""
    cmd = [sys.executable, "-m", "controller.cli", *argv, "-o", "json"]
    before = fleet.cpu()
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stderr is not None
    out = proc.stdout.read()  # stderr holds a few lines at most: no pipe deadlock
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    proc.stderr.close()
    wall = time.monotonic() - start
    if proc.returncode not in (0, 2):
        raise RuntimeError(f"ioinctl {argv[0]} exited {proc.returncode}: {err.decode()[-2000:]}")
    doc = json.loads(out)
    return Measured(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        rss_mb=usage.ru_maxrss / 1024,
        fanout=float(doc["summary"]["elapsed_s"]),
        agents_cpu=fleet.cpu() - before,
        ok=int(doc["summary"]["ok"]),
    )


def measure(n: int, per_process: int, root: Path) -> dict[str, Measured]:
    workdir = root / f"n{n}"
    workdir.mkdir()
    policy = workdir / "policy.toml"
    policy.write_text(POLICY)
    started = time.monotonic()
    fleet = HollowFleet(n, per_process, workdir)
    print(f"fleet: {n} hollow agents up in {time.monotonic() - started:.1f} s", file=sys.stderr)
    try:
        inventory = str(fleet.inventory())
        results = {}
        for label, argv, _ in COMMANDS:
            args = [a.replace("{policy}", str(policy)) for a in argv]
            m = run_ioinctl([*args, "-i", inventory], fleet)
            if m.ok != n:
                raise RuntimeError(f"{label} at N={n}: only {m.ok} hosts ok")
            results[label] = m
            print(
                f"  {label:15} N={n:5}: wall {m.wall:.2f} s, fan-out {m.fanout:.2f} s, "
                f"cpu {m.cpu:.2f} s, rss {m.rss_mb:.0f} MB, agents' cpu {m.agents_cpu:.2f} s",
                file=sys.stderr,
            )
        return results
    finally:
        fleet.close()


def rows(curve: dict[int, dict[str, Measured]]) -> list[Row]:
    out: list[Row] = []
    smallest = min(curve)
    for label, _, target in COMMANDS:
        base = curve[smallest][label].wall
        for n, results in sorted(curve.items()):
            m = results[label]
            goal = target if n >= 1000 else None
            out.append(
                Row(
                    "fleet",
                    f"{label} N={n} wall",
                    m.wall,
                    "s",
                    m.wall / base,
                    f"N={smallest}",
                    f"<= {goal:g} s" if goal else "",
                    None if goal is None else m.wall <= goal,
                )
            )
            out.append(Row("fleet", f"{label} N={n} controller cpu", m.cpu, "s"))
            out.append(Row("fleet", f"{label} N={n} agents cpu", m.agents_cpu, "s"))
            goal_rss = RSS_TARGET_MB if n >= 1000 else None
            out.append(
                Row(
                    "fleet",
                    f"{label} N={n} controller rss",
                    m.rss_mb,
                    "MB",
                    None,
                    "",
                    f"<= {RSS_TARGET_MB:g} MB" if goal_rss else "",
                    None if goal_rss is None else m.rss_mb <= goal_rss,
                )
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--per-process", type=int, default=125)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    # The hook stores live on tmpfs: each SetHook fsyncs its agent's store, and 125 agents in one
    # process would queue their fsyncs behind each other, which agents on their own hosts do not.
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="ioin-fleet-", dir=shm) as tmp:
        curve = {n: measure(n, args.per_process, Path(tmp)) for n in sizes}
    emit(rows(curve))
    return 0


if __name__ == "__main__":
    sys.exit(main())
