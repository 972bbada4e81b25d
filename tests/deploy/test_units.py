"""The systemd units in deploy/: what they declare, and that the scores their comments state
are the ones ``systemd-analyze security --offline=yes`` gives (``make check`` enforces the cap)."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.role import render

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def unit(*files: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    for name in files:
        parser.read(DEPLOY / name)
    return parser


def exposure(tmp_path: Path, *files: str) -> str:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: run `make test` (bootstrap installs systemd)")
    merged = tmp_path / "ioind.service"
    merged.write_text("".join((DEPLOY / f).read_text() for f in files))
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(merged)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", out)
    assert found, out
    return found.group(1)


def test_the_unit_is_notify_with_watchdog_reload_and_a_closed_device_policy() -> None:
    service = unit("ioind.service")["Service"]
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert int(service["WatchdogSec"]) > 0
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["DevicePolicy"] == "closed"
    assert service["DeviceAllow"] == "/dev/kvm rw"
    assert service["CapabilityBoundingSet"] == ""
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == "/var/lib/ioind"
    assert service["UMask"] == "0077"
    assert service["User"] != "root"


def test_the_kvm_trace_drop_in_adds_only_what_tracefs_and_proc_need() -> None:
    service = unit("ioind-kvm-trace.conf")["Service"]
    assert service["User"] == "root"
    assert service["CapabilityBoundingSet"] == "CAP_SYS_PTRACE CAP_DAC_READ_SEARCH"
    assert service["ReadWritePaths"] == "/sys/kernel/tracing"
    assert service["DeviceAllow"] == ""  # no /dev/kvm for an observer


def test_the_scores_in_the_comments_are_the_ones_systemd_analyze_gives(tmp_path: Path) -> None:
    base = exposure(tmp_path, "ioind.service")
    trace = exposure(tmp_path, "ioind.service", "ioind-kvm-trace.conf")
    assert float(base) <= 4.5
    assert f"rates this unit {base} OK" in (DEPLOY / "ioind.service").read_text()
    lines = (DEPLOY / "ioind-kvm-trace.conf").read_text().splitlines()
    comment = " ".join(line.removeprefix("#").strip() for line in lines if line.startswith("#"))
    assert f"with this drop-in {trace} OK, against {base} for the unit alone" in comment


def test_the_aggregator_unit_is_hardened_as_ioind_and_its_score_is_stated(tmp_path: Path) -> None:
    service = unit("ioinagg.service")["Service"]
    assert (service["CapabilityBoundingSet"], service["DevicePolicy"]) == ("", "closed")
    assert service["ExecStart"].startswith("/opt/ioin-fleet/venv/bin/ioinagg ")  # the role's venv
    score = exposure(tmp_path, "ioinagg.service")
    assert float(score) <= 4.5
    assert f"rates this unit {score} OK" in (DEPLOY / "ioinagg.service").read_text()


def test_deploy_units_are_the_role_templates_rendered_with_its_defaults() -> None:
    assert (DEPLOY / "ioind.service").read_text() == render("ioind.service.j2")
    assert (DEPLOY / "ioind-kvm-trace.conf").read_text() == render("kvm-trace.conf.j2")
