"""``ioinctl resume HOST BREAK-ID`` with the shared fleet options: HOST by address, or by name
among the agents an inventory (and selector) gives; always exactly one agent is asked."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.controller.conftest import Cli
from tests.harness import AgentProc

pytestmark = pytest.mark.slow


def test_resume_reaches_the_one_named_agent(
    cli: Cli, agent_factory: Callable[..., AgentProc], tmp_path: Path
) -> None:
    a, b = agent_factory("ctl-resume-a"), agent_factory("ctl-resume-b")
    inv = tmp_path / "fleet.toml"
    inv.write_text(
        "[defaults]\ninsecure = true\n"
        f'[[agent]]\nname = "alpha"\naddress = "{a.address}"\nlabels = {{ role = "db" }}\n'
        f'[[agent]]\nname = "beta"\naddress = "{b.address}"\nlabels = {{ role = "web" }}\n'
    )
    run = cli("resume", "beta", "b-7", "--inventory", str(inv), "-o", "json")
    assert run.code == 1  # no such break pending: the agent says NOT_FOUND
    [host] = json.loads(run.out)["hosts"]
    assert host["host"] == "beta"
    assert "NOT_FOUND" in run.err
    assert "b-7" in run.err
    by_address = cli("resume", a.address, "b-8", "--inventory", str(inv), "-o", "json")
    assert [h["host"] for h in json.loads(by_address.out)["hosts"]] == ["alpha"]
    missing = cli("resume", "gamma", "b-9", "--inventory", str(inv))
    assert missing.code == 1
    assert "gamma" in missing.err
    unselected = cli("resume", "beta", "b-9", "--inventory", str(inv), "-l", "role=db")
    assert unselected.code == 1
    assert "beta" in unselected.err


def test_resume_shows_the_shared_fleet_options(cli: Cli) -> None:
    run = cli("resume", "--help")
    assert run.code == 0
    for option in ("--hosts", "--inventory", "--selector", "--timeout", "--insecure", "--output"):
        assert option in run.out, option
