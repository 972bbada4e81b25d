"""deploy/ stays usable: the example config is valid and the unit runs what it should."""

from __future__ import annotations

import configparser
import json
from pathlib import Path

from agent.config import load_config
from controller.brokeracl import broker_acl

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


def test_shipped_broker_acl_is_what_ioinctl_pki_writes() -> None:
    """deploy/mosquitto-dynsec.json is the example of `ioinctl pki broker-acl` (tests/security/
    runs a real broker from the shipped files)."""
    shipped = json.loads((DEPLOY / "mosquitto-dynsec.json").read_text())
    assert shipped == broker_acl(["web-01", "web-02"], ["ioin-reader"], ["ioinagg-1"])
