"""A real mosquitto started from the shipped deploy/mosquitto.conf, and a PKI made by ioinctl.

Only the paths and the port of the shipped file are rewritten (and ``user root`` added when the
tests run as root, since mosquitto would otherwise switch to a user that cannot read tmp_path).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.cli import main as ioinctl
from tests.harness import free_port, wait_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
AGENTS = ("host-a", "host-b")
READERS = ("reader",)
AGGREGATORS = ("agg-1",)


@dataclass
class SecureBroker:
    port: int
    pki: Path  # ca.crt and <name>.crt / <name>.key for every identity above, plus "stranger"
    workdir: Path
    proc: subprocess.Popen[bytes]

    @property
    def log(self) -> str:
        return (self.workdir / "mosquitto.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


def make_fleet_pki(directory: Path) -> Path:
    assert ioinctl(["pki", "init", str(directory)]) == 0
    for host in (*AGENTS, "stranger"):
        assert ioinctl(["pki", "issue", str(directory), "--agent", host]) == 0
    for user in (*READERS, *AGGREGATORS):
        assert ioinctl(["pki", "issue", str(directory), "--user", user, "--role", "viewer"]) == 0
    assert (
        ioinctl(["pki", "issue", str(directory), "--broker", "broker", "--san", "127.0.0.1"]) == 0
    )
    return directory


def shipped_config(workdir: Path, pki: Path, port: int) -> Path:
    """deploy/mosquitto.conf with this test's paths and port."""
    text = (DEPLOY / "mosquitto.conf").read_text()
    text = text.replace("/etc/mosquitto/ioin/", f"{pki}/")
    text = text.replace("/var/lib/mosquitto/", f"{workdir}/")
    text = text.replace("listener 8883", f"listener {port} 127.0.0.1")
    if os.geteuid() == 0:
        text = "user root\n" + text
    conf = workdir / "mosquitto.conf"
    conf.write_text(text)
    return conf


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[SecureBroker]:
    pki = make_fleet_pki(tmp_path / "pki")
    workdir = tmp_path / "broker"
    workdir.mkdir()
    args = ["--agent", AGENTS[0], "--agent", AGENTS[1], "--reader", READERS[0]]
    assert ioinctl(["pki", "broker-acl", str(workdir / "ioin-dynsec.json"), *args,
                    "--aggregator", AGGREGATORS[0]]) == 0  # fmt: skip
    port = free_port()
    conf = shipped_config(workdir, pki, port)
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with (workdir / "mosquitto.log").open("ab") as log:
        proc = subprocess.Popen([exe, "-c", str(conf), "-v"], stdout=log, stderr=log)
    broker = SecureBroker(port, pki, workdir, proc)
    try:
        wait_port(port, proc=proc)
        yield broker
    finally:
        broker.stop()
