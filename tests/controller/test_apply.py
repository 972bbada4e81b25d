"""``ioinctl apply`` / ``diff`` against real ioind processes over mutual TLS."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.controller.conftest import Cli
from tests.controller.fleet import Fleet
from tests.harness import AgentProc

pytestmark = pytest.mark.slow

POLICY = """
[[policy]]
name = "serial"
selector = "role=web"
hooks = ["!ioin 0x3f8", "!ioout 0x3f8 rate 100"]

[[policy]]
name = "rtc"
selector = "dc=fra1"
hooks = [{ id = "rtc", command = "!ioin 0x71 core 1" }]
"""


@pytest.fixture
def fleet(agent_factory: Callable[..., AgentProc], tmp_path: Path) -> Fleet:
    return Fleet(agent_factory, tmp_path)


def policy(tmp_path: Path, text: str = POLICY) -> str:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return str(path)


def hooks_of(cli: Cli, inv: str) -> dict[str, dict[str, Any]]:
    """host -> hook command -> the hook as `hooks list -o json` shows it."""
    run = cli("hooks", "list", "-i", inv, "-o", "json")
    assert run.code in (0, 2), run.err
    return {
        h["host"]: {k["spec"]["command"]: k for k in h.get("hooks", [])}
        for h in json.loads(run.out)["hosts"]
    }


def test_apply_creates_replaces_removes_and_is_idempotent(
    cli: Cli, fleet: Fleet, tmp_path: Path
) -> None:
    fleet.start("ap-web-fra", {"role": "web", "dc": "fra1"})
    fleet.start("ap-web-ams", {"role": "web", "dc": "ams"})
    fleet.start("ap-db-fra", {"role": "db", "dc": "fra1"})
    inv = fleet.inventory()
    # A hook pushed by hand before: apply must leave it as it is.
    assert cli("push", "!ioin 0x80", "--id", "post", "-i", inv).code == 0

    first = cli("apply", policy(tmp_path), "-i", inv, "-o", "json")
    assert first.code == 0, first.err
    doc = json.loads(first.out)
    changes = {h["host"]: sorted(c["command"] for c in h["changes"]) for h in doc["hosts"]}
    assert changes == {
        "ap-web-fra": ["!ioin 0x3f8", "!ioin 0x71 core 1", "!ioout 0x3f8 rate 100"],
        "ap-web-ams": ["!ioin 0x3f8", "!ioout 0x3f8 rate 100"],
        "ap-db-fra": ["!ioin 0x71 core 1"],
    }
    assert all(c["action"] == "create" for h in doc["hosts"] for c in h["changes"])
    assert doc["summary"]["ok"] == 3

    listed = hooks_of(cli, inv)
    assert set(listed["ap-web-fra"]) == {
        "!ioin 0x80",
        "!ioin 0x3f8",
        "!ioin 0x71 core 1",
        "!ioout 0x3f8 rate 100",
    }
    serial = listed["ap-web-fra"]["!ioin 0x3f8"]["owner"]
    assert serial["policy"] == "serial"
    assert "@" in serial["applied_by"]
    assert serial["applied_ns"] > 0
    assert listed["ap-web-fra"]["!ioin 0x80"]["owner"] is None  # hand-pushed

    again = cli("apply", policy(tmp_path), "-i", inv)
    assert again.code == 0, again.err
    assert again.out.splitlines()[-1].startswith("apply: 3 hosts, 3 ok (3 unchanged), 0 failed")

    # Change the file: serial's OUT hook goes, rtc's hook changes, rtc now selects role=web too.
    changed = policy(
        tmp_path,
        POLICY.replace(', "!ioout 0x3f8 rate 100"', "").replace(
            "!ioin 0x71 core 1", "!ioin 0x71 core 0"
        ),
    )
    plan = cli("diff", changed, "-i", inv, "-o", "json")
    assert plan.code == 0, plan.err
    planned = {
        h["host"]: {(c["action"], c["command"]) for c in h["changes"]}
        for h in json.loads(plan.out)["hosts"]
    }
    assert planned == {
        "ap-web-fra": {("remove", "!ioout 0x3f8 rate 100"), ("replace", "!ioin 0x71 core 0")},
        "ap-web-ams": {("remove", "!ioout 0x3f8 rate 100")},
        "ap-db-fra": {("replace", "!ioin 0x71 core 0")},
    }
    assert set(hooks_of(cli, inv)["ap-web-fra"]) == set(listed["ap-web-fra"])  # diff: no change
    dry = cli("apply", "--dry-run", changed, "-i", inv)
    assert dry.code == 0
    rows = [line for line in dry.out.splitlines() if line.startswith("│")]
    assert sum("remove" in r and "!ioout 0x3f8 rate 100" in r for r in rows) == 2  # every row
    assert set(hooks_of(cli, inv)["ap-web-fra"]) == set(listed["ap-web-fra"])

    done = cli("apply", changed, "-i", inv)
    assert done.code == 0, done.err
    after = hooks_of(cli, inv)
    assert set(after["ap-web-fra"]) == {"!ioin 0x80", "!ioin 0x3f8", "!ioin 0x71 core 0"}
    assert set(after["ap-web-ams"]) == {"!ioin 0x80", "!ioin 0x3f8"}
    assert set(after["ap-db-fra"]) == {"!ioin 0x80", "!ioin 0x71 core 0"}
    assert (
        cli("apply", changed, "-i", inv)
        .out.splitlines()[-1]
        .startswith("apply: 3 hosts, 3 ok (3 unchanged)")
    )


def test_a_hand_pushed_hook_with_a_policy_hooks_id_is_a_conflict(
    cli: Cli, fleet: Fleet, tmp_path: Path
) -> None:
    fleet.start("ap-conflict", {"role": "web"})
    inv = fleet.inventory()
    assert cli("push", "!ioin 0x3f8", "-i", inv).code == 0  # same derived id as serial's hook
    run = cli("apply", policy(tmp_path), "-i", inv, "-o", "json")
    assert run.code == 1  # the only host is not converged
    [host] = json.loads(run.out)["hosts"]
    assert host["error"]["kind"] == "error"
    assert "a hook pushed by hand has this id" in host["error"]["message"]
    listed = hooks_of(cli, inv)["ap-conflict"]
    assert set(listed) == {"!ioin 0x3f8"}  # untouched: neither replaced nor joined by others
    assert listed["!ioin 0x3f8"]["owner"] is None


def test_ownership_survives_a_restart_and_an_offline_agent_converges_next_run(
    cli: Cli, fleet: Fleet, tmp_path: Path
) -> None:
    up = fleet.start("ap-up", {"role": "web"})
    down = fleet.start("ap-down", {"role": "web"})
    inv = fleet.inventory()
    down.stop()
    first = cli("apply", policy(tmp_path), "-i", inv, "-o", "json")
    assert first.code == 2, first.err  # one agent offline: not converged
    states = {h["host"]: h for h in json.loads(first.out)["hosts"]}
    assert states["ap-up"]["converged"] is True
    assert states["ap-down"]["error"]["kind"] in ("refused", "tls")
    down.start()
    up.stop()
    up.start()  # ownership is stored with the hook, and survives the restart
    second = cli("apply", policy(tmp_path), "-i", inv, "-o", "json")
    assert second.code == 0, second.err
    states = {h["host"]: h for h in json.loads(second.out)["hosts"]}
    assert states["ap-up"]["changes"] == []  # still owned by serial: nothing to do
    assert [c["action"] for c in states["ap-down"]["changes"]] == ["create", "create"]
    owners = {c: h["owner"]["policy"] for c, h in hooks_of(cli, inv)["ap-up"].items()}
    assert owners == {"!ioin 0x3f8": "serial", "!ioout 0x3f8 rate 100": "serial"}
