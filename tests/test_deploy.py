"""deploy/ stays usable: the example config is valid and the unit runs what it should."""

from __future__ import annotations

import configparser
from pathlib import Path

from agent.config import load_config

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def test_example_agent_config_is_valid() -> None:
    cfg = load_config(DEPLOY / "agent.toml")
    assert cfg.host == "web-01"
    assert not cfg.grpc.insecure  # the example shows the secure default


def test_systemd_unit_runs_ioind_with_the_config_and_restarts_on_failure() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(DEPLOY / "ioind.service")
    service = unit["Service"]
    assert service["ExecStart"].endswith("ioind --config /etc/ioind/agent.toml")
    assert service["Restart"] == "on-failure"
    assert "check-config" in service["ExecStartPre"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_mosquitto_acl_confines_each_agent_to_its_prefix() -> None:
    acl = (DEPLOY / "mosquitto.acl").read_text().splitlines()
    assert "pattern write ioin/v1/%u/#" in acl
