"""``make demo``: a broker, three agents as three hosts, an aggregator beside them, two hooks
pushed, live events, a summary, then the aggregator's view: ``ioinctl top --once`` and a query.

The agents and ``ioinctl`` use mutual TLS with certificates made by ``ioinctl pki``; the hooks
are pushed as an operator, and a ``break`` hook is shown being refused for that role.

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
AGENTS = ("demo-a", "demo-b", "demo-c")
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


def make_pki(pki: Path) -> list[str]:
    """The fleet CA, one certificate per agent and an operator's; ``ioinctl``'s TLS flags."""
    say("a fleet CA and certificates (ioinctl pki)")
    ioinctl("pki", "init", str(pki))
    for name in AGENTS:
        ioinctl("pki", "issue", str(pki), "--agent", name, "--san", "127.0.0.1")
    ioinctl("pki", "issue", str(pki), "--user", "demo-operator", "--role", "operator")
    ioinctl("pki", "show", str(pki / "demo-operator.crt"))
    return ["--ca", str(pki / "ca.crt"), "--cert", str(pki / "demo-operator.crt"),
            "--key", str(pki / "demo-operator.key")]  # fmt: skip


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="ioin-demo-"))
    agents: list[AgentProc] = []
    broker = start_broker(work / "mosquitto")
    agg: AggProc | None = None
    try:
        say(f"mosquitto on {broker.address}")
        agg = start_aggregator(broker, work / "ioinagg", extra=["--alerts", str(ALERTS)])
        print(f"ioinagg: gRPC {agg.address}, metrics 127.0.0.1:{agg.metrics_port}, SQLite store")
        pki = work / "pki"
        tls_flags = make_pki(pki)
        guest = kvm_guest()
        for name in AGENTS:
            tls = (pki / f"{name}.crt", pki / f"{name}.key", pki / "ca.crt")
            if name == "demo-c" and guest is not None:
                vm = f'[[kvm.vm]]\nname = "clock"\nimage = "{guest}"\nvcpus = 2\n'
                agents.append(
                    start_agent(name, broker, work / name, backend="kvm", extra_toml=vm, tls=tls)
                )
            else:
                agents.append(start_agent(name, broker, work / name, sim_rate=60, tls=tls))
            print(
                f"ioind {name}: backend {'kvm' if name == 'demo-c' and guest else 'sim'}, "
                f"gRPC {agents[-1].address}"
            )
        hosts = ",".join(a.address for a in agents)
        say("push two hooks to the three agents (mutual TLS, as an operator)")
        ioinctl("push", "!ioin 0x3f8", "--hosts", hosts, *tls_flags)
        ioinctl("push", "!ioin 0x70 core 1", "--hosts", hosts, *tls_flags)
        say("an operator may not push a hook that changes the guest: refused by role")
        ioinctl("push", "!ioin 0x71 break", "--hosts", agents[0].address, *tls_flags)
        say(f"live events for {WATCH_SECONDS} s (then a per-host summary)")
        ioinctl("watch", "--broker", broker.address, "--seconds", str(WATCH_SECONDS))
        say("agent status")
        ioinctl("status", "--hosts", hosts, *tls_flags)
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
