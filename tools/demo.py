"""``make demo``: a broker, three agents as three hosts, an aggregator beside them, two hooks
pushed, live events, a summary, then the aggregator's view: ``ioinctl top --once`` and a query.

Everything it starts runs on this machine (loopback only) and is stopped at the end.
Host ``demo-c`` runs the kvm backend with a sample guest when /dev/kvm is usable and the guests
are built; otherwise all three run the sim backend.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.aggregator.procs import AggProc, start_aggregator  # noqa: E402
from tests.harness import AgentProc, start_agent, start_broker  # noqa: E402

IOINCTL = [str(Path(sys.executable).parent / "ioinctl")]
WATCH_SECONDS = 15
ALERTS = ROOT / "deploy/alerts.toml"


def kvm_guest() -> Path | None:
    """The demo's clock guest (two vCPUs), if this machine can run the kvm backend."""
    guest = ROOT / "agent/backends/kvm/guests/clock.bin"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK) or not guest.exists():
        return None
    return guest


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def ioinctl(*args: str) -> int:
    print("$ ioinctl " + " ".join(args), flush=True)
    return subprocess.run([*IOINCTL, *args], check=False).returncode


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="ioin-demo-"))
    agents: list[AgentProc] = []
    broker = start_broker(work / "mosquitto")
    agg: AggProc | None = None
    try:
        say(f"mosquitto on {broker.address}")
        agg = start_aggregator(broker, work / "ioinagg", extra=["--alerts", str(ALERTS)])
        print(f"ioinagg: gRPC {agg.address}, metrics 127.0.0.1:{agg.metrics_port}, SQLite store")
        guest = kvm_guest()
        for name in ("demo-a", "demo-b", "demo-c"):
            if name == "demo-c" and guest is not None:
                vm = f'[[kvm.vm]]\nname = "clock"\nimage = "{guest}"\nvcpus = 2\n'
                agents.append(start_agent(name, broker, work / name, backend="kvm", extra_toml=vm))
            else:
                agents.append(start_agent(name, broker, work / name, sim_rate=60))
            print(
                f"ioind {name}: backend {'kvm' if name == 'demo-c' and guest else 'sim'}, "
                f"gRPC {agents[-1].address}"
            )
        hosts = ",".join(a.address for a in agents)
        say("push two hooks to the three agents")
        ioinctl("push", "!ioin 0x3f8", "--hosts", hosts, "--insecure")
        ioinctl("push", "!ioin 0x70 core 1", "--hosts", hosts, "--insecure")
        say(f"live events for {WATCH_SECONDS} s (then a per-host summary)")
        ioinctl("watch", "--broker", broker.address, "--seconds", str(WATCH_SECONDS))
        say("agent status")
        ioinctl("status", "--hosts", hosts, "--insecure")
        at = ["--aggregator", agg.address, "--insecure"]
        say("the aggregator's view of the fleet: the hottest (host, vm, port) right now")
        ioinctl("top", "--once", "--window", "10", *at)
        say("exact counts of the last hour, by port and host")
        ioinctl("query", "--since", "1h", "--by", "port,host", *at)
        return 0
    finally:
        say("stopping everything the demo started")
        for agent in agents:
            agent.stop()
        if agg is not None:
            agg.stop()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
