"""Fan-out at fleet scale against real ioind processes over mutual TLS: rollouts in batches with
a failure budget, deadlines that bound a host that never answers, and the JSON / JSONL shapes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.controller.conftest import Cli
from tests.controller.fleet import Fleet
from tests.harness import AgentProc, free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def fleet(agent_factory: Callable[..., AgentProc], tmp_path: Path) -> Fleet:
    return Fleet(agent_factory, tmp_path)


@pytest.fixture
def silent() -> Iterator[Callable[[], str]]:
    """Addresses that accept TCP connections and never answer (the kernel does the accept)."""
    socks: list[socket.socket] = []

    def make() -> str:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        socks.append(s)
        return f"127.0.0.1:{s.getsockname()[1]}"

    yield make
    for s in socks:
        s.close()


def test_batches_stop_once_failures_pass_max_fail(cli: Cli, fleet: Fleet) -> None:
    for name in ("ro-a", "ro-d", "ro-e", "ro-f"):
        fleet.start(name)
    fleet.dead = {"ro-b": f"127.0.0.1:{free_port()}", "ro-c": f"127.0.0.1:{free_port()}"}
    inv = fleet.inventory()  # order: a d e f b c
    ok = cli("push", "!ioin 0x60", "-i", inv, "--batch", "2", "--max-fail", "1", "-o", "json")
    assert ok.code == 2  # two failures in the last batch: reported, nothing left to stop
    states = [h["state"] for h in json.loads(ok.out)["hosts"]]
    assert states == ["ok", "ok", "ok", "ok", "failed", "failed"]

    # Now the dead hosts come first: batch 1 fails both (2 > 1), the rest are not attempted.
    fleet.agents = {n: fleet.agents[n] for n in ("ro-a", "ro-d", "ro-e", "ro-f")}
    dead_first = fleet.workdir / "dead-first.toml"
    text = Path(inv).read_text()
    head, *entries = text.split("[[agent]]\n")
    dead = [e for e in entries if "ro-b" in e or "ro-c" in e]
    live = [e for e in entries if e not in dead]
    dead_first.write_text(head + "".join("[[agent]]\n" + e for e in dead + live))
    run = cli("push", "!ioin 0x64", "-i", str(dead_first), "--batch", "50%", "--max-fail", "1")
    assert run.code == 2
    rows = [line for line in run.out.splitlines() if line.startswith("│")]
    assert "not attempted" in rows[2]
    assert "rollout stopped, 2 failed (--max-fail 1)" in rows[2]
    assert run.out.splitlines()[-1].startswith(
        "push: 6 hosts, 1 ok (1 created), 2 failed, 3 not attempted, "
    )
    listed = json.loads(cli("hooks", "list", "-i", inv, "-o", "json").out)["hosts"]
    has = {
        h["host"]: any(k["spec"]["command"] == "!ioin 0x64" for k in h.get("hooks", []))
        for h in listed
        if h["ok"]
    }
    assert has == {"ro-a": True, "ro-d": False, "ro-e": False, "ro-f": False}


def ioinctl(*args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "controller.cli", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def timed_lines(proc: subprocess.Popen[str]) -> list[tuple[float, str]]:
    assert proc.stdout is not None
    assert proc.stderr is not None
    lines = [(time.monotonic(), line) for line in proc.stdout]
    proc.stderr.read()
    proc.wait(30)
    return lines


def test_a_host_that_never_answers_costs_its_deadline_and_delays_no_one(
    fleet: Fleet, silent: Callable[[], str]
) -> None:
    agent = fleet.start("dl-live")
    fleet.dead = {"dl-silent": silent()}
    inv = fleet.inventory()
    start = time.monotonic()
    with ioinctl("push", "!ioin 0x3f8", "-i", inv, "--timeout", "2", "-o", "jsonl") as proc:
        lines = timed_lines(proc)
    assert proc.returncode == 2
    (t_live, live), (t_silent, quiet) = lines
    assert json.loads(live)["host"] == "dl-live"  # streamed before the silent host's deadline
    doc = json.loads(quiet)
    assert doc["host"] == "dl-silent"
    assert doc["error"]["kind"] == "timeout"
    assert doc["error"]["message"].endswith("no answer within 2 s")
    assert 1.5 < t_silent - t_live < 2.5  # the live host's answer did not wait for it
    assert t_silent - start < 2 + 5  # interpreter start-up plus the one deadline
    assert agent.address


def test_the_overall_deadline_and_the_concurrency_limit(
    fleet: Fleet, silent: Callable[[], str], cli: Cli
) -> None:
    fleet.start("dl-one")
    fleet.dead = {f"dl-silent-{i}": silent() for i in range(3)}
    inv = fleet.inventory()
    start = time.monotonic()
    run = cli("hooks", "list", "-i", inv, "--timeout", "30", "--deadline", "1", "-o", "json")
    took = time.monotonic() - start
    assert run.code == 2
    assert took < 3
    doc = json.loads(run.out)
    kinds = [h["error"]["kind"] for h in doc["hosts"] if h["error"]]
    assert kinds == ["timeout"] * 3
    # One call at a time: the silent hosts now cost their deadlines one after another (the
    # second only the time left), and once the overall deadline has passed the host still
    # waiting for its turn is not attempted.
    start = time.monotonic()
    one = cli(
        "hooks",
        "list",
        "-i",
        inv,
        "--timeout",
        "0.5",
        "--concurrency",
        "1",
        "--deadline",
        "0.9",
        "-o",
        "json",
    )
    took = time.monotonic() - start
    states = [h["state"] for h in json.loads(one.out)["hosts"]]
    assert states == ["ok", "failed", "failed", "skipped"], states
    assert 0.9 < took < 3
    assert json.loads(one.out)["summary"]["not_attempted"] == 1


def test_json_and_jsonl_shapes(cli: Cli, fleet: Fleet) -> None:
    fleet.start("sh-a")
    fleet.start("sh-b")
    fleet.dead = {"sh-dead": f"127.0.0.1:{free_port()}"}
    inv = fleet.inventory()
    run = cli("push", "!ioout 0x80", "-i", inv, "-o", "json")
    doc = json.loads(run.out)
    assert set(doc) == {"summary", "hosts"}
    assert doc["summary"] | {"elapsed_s": 0} == {
        "command": "push",
        "hosts": 3,
        "ok": 2,
        "outcomes": {"created": 2},
        "failed": 1,
        "not_attempted": 0,
        "elapsed_s": 0,
    }
    keys = {"host", "address", "state", "ok", "error", "skipped", "attempts", "elapsed_s"}
    for host in doc["hosts"]:
        assert keys <= set(host)
    dead = doc["hosts"][2]
    assert dead["error"]["kind"] == "refused"
    assert dead["error"]["code"] is None
    assert dead["attempts"] == 3  # UNAVAILABLE retried twice: SetHook is idempotent
    assert {"created", "action", "hook"} <= set(doc["hosts"][0])

    lines = cli("hooks", "list", "-i", inv, "-o", "jsonl")
    objs = [json.loads(line) for line in lines.out.splitlines()]
    assert sorted(o["host"] for o in objs) == ["sh-a", "sh-b", "sh-dead"]
    assert all(keys <= set(o) for o in objs)
    assert [len(o["hooks"]) for o in objs if o["ok"]] == [1, 1]
    assert lines.err.splitlines()[-1].startswith("hooks list: 3 hosts, 2 ok")
