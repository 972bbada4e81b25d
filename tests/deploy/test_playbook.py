"""The Ansible role for real: ``ansible-playbook`` with connection=local into a scratch root.

systemd is not PID 1 here, so ``ioind_manage_service=false`` skips the start; the test starts
the installed ``ioind`` with the installed config itself and asks it for health with the
installed ``ioind health``, from a directory outside the checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.controller.pki import make_pki
from tests.deploy.conftest import REPO, Dist, run
from tests.deploy.role import render
from tests.harness import Broker, free_port, wait_port

pytestmark = pytest.mark.slow

ANSIBLE = REPO / "deploy" / "ansible"


def ansible_bin(name: str) -> Path:
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.fail(f"{name} is missing: `make test` installs ansible-core (a dev dependency)")
    return path


@pytest.fixture
def rollout(tmp_path: Path, dist: Dist, mosquitto: Broker) -> dict[str, object]:
    """Inventory variables that put every path under ``tmp_path/root``."""
    root, pki = tmp_path / "root", make_pki(tmp_path / "pki")
    return {
        "ioind_wheel": str(dist.wheel),
        # --no-compile: the test has no time for byte-compiling every dependency
        "ioind_pip_extra_args": f"--no-index --find-links {dist.wheelhouse} --no-compile",
        "ioind_python": sys.executable,
        "ioind_venv": str(root / "opt/ioin-fleet/venv"),
        "ioind_config_dir": str(root / "etc/ioind"),
        "ioind_state_dir": str(root / "var/lib/ioind"),
        "ioind_unit_dir": str(root / "etc/systemd/system"),
        "ioind_host_id": "rollout-1",
        "ioind_labels": {"zone": "eu-1", "role": "web"},
        "ioind_grpc_listen": f"127.0.0.1:{free_port()}",
        "ioind_broker_port": mosquitto.port,
        "ioind_mqtt_tls": False,  # the test's broker is plain (the TLS bus: tests/security)
        "ioind_hooks": ["!ioin 0x3f8"],
        "ioind_tls_ca_src": str(pki.ca),
        "ioind_tls_cert_src": str(pki.server_cert),
        "ioind_tls_key_src": str(pki.server_key),
        "ioind_manage_user": False,
        "ioind_manage_service": False,
    }


def play(tmp_path: Path, variables: dict[str, object]) -> dict[str, int]:
    """Run the playbook once; the recap's counters for localhost."""
    inventory = tmp_path / "inventory.json"
    host = {"ansible_connection": "local", "ansible_become": False}
    host["ansible_python_interpreter"] = sys.executable
    inventory.write_text(json.dumps({"ioind": {"hosts": {"localhost": host}}}))
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps(variables))
    env = os.environ | {"ANSIBLE_HOME": str(tmp_path / "ansible"), "ANSIBLE_NOCOLOR": "1"}
    done = subprocess.run(
        [ansible_bin("ansible-playbook"), "-i", inventory, "-e", f"@{extra}", "playbook.yml"],
        cwd=ANSIBLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    recap = re.search(r"localhost\s*:\s*((?:\w+=\d+\s*)+)", done.stdout)
    assert recap, done.stdout[-2000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", recap.group(1))}


def test_the_playbook_installs_a_working_agent_and_a_second_run_changes_nothing(
    tmp_path: Path, rollout: dict[str, object]
) -> None:
    first = play(tmp_path, rollout)
    assert first["failed"] == 0
    assert first["changed"] > 0
    second = play(tmp_path, rollout)
    assert (second["changed"], second["failed"]) == (0, 0), second

    venv, etc = Path(str(rollout["ioind_venv"])), Path(str(rollout["ioind_config_dir"]))
    unit_dir = Path(str(rollout["ioind_unit_dir"]))
    overrides = {k: v for k, v in rollout.items() if k.startswith("ioind_") and "dir" in k}
    unit = (unit_dir / "ioind.service").read_text()
    assert unit == render("ioind.service.j2", **overrides, ioind_venv=str(venv))
    enabled = unit_dir / "multi-user.target.wants" / "ioind.service"
    assert enabled.resolve() == unit_dir / "ioind.service"
    assert (etc / "tls/agent.key").stat().st_mode & 0o777 == 0o640
    config = (etc / "agent.toml").read_text()
    assert 'host = "rollout-1"' in config
    assert 'labels = { "role" = "web", "zone" = "eu-1" }' in config  # check-config passed it
    assert f'cert = "{etc}/tls/agent.crt"' in config

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = run(venv / "bin/python", "-c", "import agent; print(agent.__file__)", cwd=outside)
    assert where.startswith(str(venv)), where  # nothing from the checkout
    agent = subprocess.Popen(
        [venv / "bin/ioind", "--config", etc / "agent.toml"],
        cwd=outside,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_port(int(str(rollout["ioind_grpc_listen"]).rpartition(":")[2]), 30, agent)
        toml = etc / "agent.toml"
        health = run(venv / "bin/ioind", "health", "--config", toml, "--wait", "30", cwd=outside)
        assert health.strip() == "SERVING"
    finally:
        agent.terminate()
        out, _ = agent.communicate(timeout=15)
    assert agent.returncode == 0, out[-3000:]


def test_ansible_lint_passes_on_the_role_and_playbook(tmp_path: Path) -> None:
    lint = Path(sys.executable).parent / "ansible-lint"
    if not lint.exists() and shutil.which("ansible-lint") is None:
        pytest.skip("ansible-lint did not install from the registries (dev dependency)")
    env = os.environ | {"ANSIBLE_HOME": str(tmp_path / "ansible"), "NO_COLOR": "1"}
    done = subprocess.run(
        [lint, "--offline", "playbook.yml", "roles/ioind"],
        cwd=ANSIBLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
