"""ioinctl against real ioind processes (sim backend) and a real mosquitto."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.events import JSON_KEYS
from tests.controller.conftest import Cli
from tests.harness import AgentProc, Broker, free_port

pytestmark = pytest.mark.slow

Factory = Callable[..., AgentProc]
IOINCTL = str(Path(sys.executable).parent / "ioinctl")


def hosts(*agents: AgentProc) -> str:
    return ",".join(a.address for a in agents)


def test_push_to_two_agents_then_again(cli: Cli, agent_factory: Factory) -> None:
    a, b = agent_factory("ctl-push-a"), agent_factory("ctl-push-b")
    run = cli("push", "!ioin 0x3f8", "--hosts", hosts(a, b), "--insecure")
    assert run.code == 0, run.err
    [row] = [line for line in run.out.splitlines() if line.startswith("│")]
    assert f"2 hosts ({a.address}, {b.address})" in row  # identical results: one group
    assert "ok" in row
    assert "created" in row
    assert run.out.splitlines()[-1].startswith("push: 2 hosts, 2 ok (2 created), 0 failed, ")
    wide = cli("push", "!ioin 0x3f8", "--hosts", hosts(a, b), "--insecure", "--wide")
    rows = [line for line in wide.out.splitlines() if line.startswith("│")]
    assert [agent.address in row for agent, row in zip((a, b), rows, strict=True)] == [True] * 2
    again = cli("push", "!IOIN 3F8", "--hosts", hosts(a, b), "--insecure", "-o", "json")
    assert again.code == 0, again.err
    doc = json.loads(again.out)["hosts"]
    assert [d["created"] for d in doc] == [False, False]  # same canonical hook: not created
    assert len({d["hook"]["id"] for d in doc}) == 1


def test_one_live_one_dead_exits_2(cli: Cli, agent_factory: Factory) -> None:
    a = agent_factory("ctl-half")
    dead = f"127.0.0.1:{free_port()}"
    run = cli("push", "!ioout 0x80", "--id", "post", "--hosts", f"{a.address},{dead}", "--insecure")
    assert run.code == 2
    assert f"ioinctl: {dead}: unreachable: " in run.err
    assert "push: 2 hosts, 1 ok (1 created), 1 failed, " in run.out


def test_hooks_list_disable_enable_rm(cli: Cli, agent_factory: Factory, tmp_path: Path) -> None:
    a = agent_factory("ctl-hooks")
    inv = tmp_path / "fleet.toml"
    inv.write_text(
        f'[defaults]\ninsecure = true\n[[agent]]\nname = "alpha"\naddress = "{a.address}"\n'
    )
    opts = ["--inventory", str(inv), "-o", "json"]
    assert cli("push", "!ioin 0x70 core 1", "--id", "rtc", "--disabled", *opts).code == 0

    def listed() -> list[dict[str, object]]:
        run = cli("hooks", "list", *opts)
        assert run.code == 0, run.err
        [host] = json.loads(run.out)["hosts"]
        assert host["host"] == "alpha"
        return [{"id": h["id"], "enabled": h["enabled"]} for h in host["hooks"]]

    assert listed() == [{"id": "rtc", "enabled": False}]
    assert cli("hooks", "enable", "rtc", *opts).code == 0
    assert listed() == [{"id": "rtc", "enabled": True}]
    assert cli("hooks", "disable", "rtc", *opts).code == 0
    assert listed() == [{"id": "rtc", "enabled": False}]
    table = cli("hooks", "list", "--inventory", str(inv), "--wide")
    assert "alpha" in table.out
    assert "!ioin 0x70 core 1" in table.out
    assert cli("hooks", "rm", "rtc", *opts).code == 0
    assert listed() == []
    gone = cli("hooks", "rm", "rtc", "--inventory", str(inv))
    assert gone.code == 1
    assert "alpha: NOT_FOUND: " in gone.err
    assert "rtc" in gone.err


def test_status(cli: Cli, agent_factory: Factory, mosquitto: Broker) -> None:
    a = agent_factory("ctl-status")
    cli("push", "!ioin 0x3f8", "--hosts", a.address, "--insecure")
    run = cli("status", "--hosts", a.address, "--insecure", "-o", "json")
    assert run.code == 0, run.err
    [doc] = json.loads(run.out)["hosts"]
    assert doc["host_id"] == "ctl-status"
    assert doc["backend"] == "sim"
    assert "in" in doc["capabilities"]
    assert len(doc["hooks"]) == 1
    assert isinstance(doc["counters"], dict)
    table = cli("status", "--hosts", a.address, "--insecure")
    [row] = [line for line in table.out.splitlines() if line.startswith("│")]
    assert "ctl-status" in row
    assert "sim" in row
    detail = cli("status", a.address, "--hosts", a.address, "--insecure")
    assert detail.code == 0, detail.err
    assert "counter events_matched" in detail.out
    assert "capabilities" in detail.out


def test_an_agent_refusal_shows_its_reason(cli: Cli, agent_factory: Factory) -> None:
    a = agent_factory("ctl-refuse")
    argv = ["--hosts", a.address, "--insecure"]
    run = cli("vm", "start", "--name", "v", "--image", "/boot.bin", *argv)  # sim runs no VMs
    assert run.code == 1
    line = run.err.splitlines()[0]
    assert (
        line
        == f"ioinctl: {a.address}: INVALID_ARGUMENT: backend 'sim' lacks capability 'vms' (StartVm)"
    )
    assert cli("vm", "list", *argv).code == 0
    run = cli("resume", a.address, "b-9", "--value", "0x41", "--insecure")
    assert run.code == 1
    assert "NOT_FOUND" in run.err
    assert "b-9" in run.err


def test_watch_receives_the_pushed_hooks_events(
    cli: Cli, agent_factory: Factory, mosquitto: Broker
) -> None:
    a, b = agent_factory("ctl-watch-a"), agent_factory("ctl-watch-b")
    assert (
        cli("push", "!ioin 0x3f8", "--id", "uart", "--hosts", hosts(a, b), "--insecure").code == 0
    )
    assert cli("push", "!ioout 0x70", "--id", "rtc", "--hosts", a.address, "--insecure").code == 0
    argv = [IOINCTL, "watch", "--broker", f"{mosquitto.host}:{mosquitto.port}", "-o", "json"]
    done = subprocess.run(
        [*argv, "--hook", "uart", "--seconds", "2.5"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    mine = [e for e in events if e["host"] in (a.host_id, b.host_id)]
    assert {e["host"] for e in mine} == {a.host_id, b.host_id}
    assert all(list(e) == list(JSON_KEYS) for e in events)
    assert {(e["hook_id"], e["dir"], e["port"]) for e in mine} == {("uart", "in", 0x3F8)}
    assert "summary" in done.stderr  # with -o json the summary goes to stderr
    assert a.host_id in done.stderr


def test_watch_human_lines_and_summary(cli: Cli, agent_factory: Factory, mosquitto: Broker) -> None:
    a = agent_factory("ctl-watch-h")
    assert cli("push", "!ioout 0x70", "--id", "rtc", "--hosts", a.address, "--insecure").code == 0
    argv = [IOINCTL, "watch", "--broker", f"127.0.0.1:{mosquitto.port}", "--host", a.host_id]
    done = subprocess.run([*argv, "--seconds", "2"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(f" {a.host_id} #" in line and " rtc OUT port 0x0070 " in line for line in lines)
    summary = [line for line in lines if line.startswith("│") and a.host_id in line]
    assert summary
    assert "0x0070" in summary[0]


def test_watch_without_a_broker_is_one_clear_error(cli: Cli) -> None:
    address = f"127.0.0.1:{free_port()}"
    run = cli("watch", "--broker", address, "--seconds", "1")
    assert run.code == 1
    assert f"ioinctl: broker {address}: " in run.err


def watch_json(broker: Broker, host_id: str, seconds: float) -> list[dict[str, object]]:
    argv = [
        IOINCTL,
        "watch",
        "--broker",
        f"127.0.0.1:{broker.port}",
        "--host",
        host_id,
        "-o",
        "json",
    ]
    done = subprocess.run(
        [*argv, "--seconds", str(seconds)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_hooks_rm_stops_the_events(cli: Cli, agent_factory: Factory, mosquitto: Broker) -> None:
    a = agent_factory("ctl-rm-stops")
    opts = ["--hosts", a.address, "--insecure"]
    assert cli("push", "!ioin 0x3f8", "--id", "uart", *opts).code == 0
    assert cli("push", "!ioin 0x70", "--id", "rtc", *opts).code == 0
    assert {e["hook_id"] for e in watch_json(mosquitto, a.host_id, 1.5)} == {"uart", "rtc"}
    assert cli("hooks", "rm", "uart", *opts).code == 0
    time.sleep(0.3)  # batches cut before the removal may still be in flight
    assert {e["hook_id"] for e in watch_json(mosquitto, a.host_id, 1.5)} == {"rtc"}


def test_ctrl_c_ends_a_watch_with_its_summary(
    cli: Cli, agent_factory: Factory, mosquitto: Broker
) -> None:
    a = agent_factory("ctl-sigint")
    assert cli("push", "!ioin 0x3f8", "--hosts", a.address, "--insecure").code == 0
    argv = [IOINCTL, "watch", "--broker", f"127.0.0.1:{mosquitto.port}", "--host", a.host_id]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "summary" in out
    assert any(line.startswith("│") and a.host_id in line for line in out.splitlines())
