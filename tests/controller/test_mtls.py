"""Mutual TLS end to end: a real ioind serving gRPC with certificates, ioinctl as its client."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.controller.pki import make_pki
from tests.harness import AgentProc


def ioinctl(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "controller.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def test_mutual_tls_admits_the_fleet_ca_and_refuses_everything_else(
    agent_factory: Callable[..., AgentProc], tmp_path: Path
) -> None:
    pki, other = make_pki(tmp_path / "pki"), make_pki(tmp_path / "other", name="other")
    agent = agent_factory("mtls", tls=(pki.server_cert, pki.server_key, pki.ca))
    ours = ["--ca", str(pki.ca), "--cert", str(pki.client_cert), "--key", str(pki.client_key)]
    ok = ioinctl("push", "!ioin 0x3f8", "--hosts", agent.address, *ours, "-o", "json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["hosts"][0]["created"] is True

    plain = ioinctl("hooks", "list", "--hosts", agent.address, "--insecure")
    assert plain.returncode == 1
    assert "unreachable" in plain.stderr

    foreign = [
        "--ca",
        str(pki.ca),
        "--cert",
        str(other.client_cert),
        "--key",
        str(other.client_key),
    ]
    refused = ioinctl("hooks", "list", "--hosts", agent.address, *foreign)
    assert refused.returncode == 1
    assert agent.address in refused.stderr

    # A refused handshake is not retried (it would fail the same way) and gRPC's own log of it
    # stays off the terminal: one short line per host, whatever the fleet's size.
    other_ca = ["--ca", str(other.ca), *ours[2:]]
    wrong = ioinctl("hooks", "list", "--hosts", agent.address, *other_ca, "-o", "json")
    assert wrong.returncode == 1
    (host,) = json.loads(wrong.stdout)["hosts"]
    assert (host["error"]["kind"], host["attempts"]) == ("tls", 1)
    assert "Handshake failed" not in wrong.stderr
