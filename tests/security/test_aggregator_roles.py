"""The aggregator's gRPC service applies the agents' roles: a real ioinagg with mutual TLS,
certificates from ``ioinctl pki``, queried with ``ioinctl query`` as a viewer and as an agent."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from controller.cli import main as ioinctl
from tests.aggregator.procs import AggProc, start_aggregator
from tests.harness import Broker

pytestmark = pytest.mark.slow


def query(agg: AggProc, d: Path, who: str) -> subprocess.CompletedProcess[str]:
    tls = [
        "--ca",
        str(d / "ca.crt"),
        "--cert",
        str(d / f"{who}.crt"),
        "--key",
        str(d / f"{who}.key"),
    ]
    args = [sys.executable, "-m", "controller.cli", "query", "--aggregator", agg.address, *tls]
    return subprocess.run([*args, "-o", "json"], capture_output=True, text=True, timeout=60)


async def test_viewers_query_the_aggregator_and_agent_certificates_are_refused(
    mosquitto: Broker, tmp_path: Path
) -> None:
    d = tmp_path / "pki"
    assert ioinctl(["pki", "init", str(d)]) == 0
    assert ioinctl(["pki", "issue", str(d), "--agent", "agg-host", "--san", "127.0.0.1"]) == 0
    assert ioinctl(["pki", "issue", str(d), "--agent", "web-01"]) == 0
    assert ioinctl(["pki", "issue", str(d), "--user", "vic", "--role", "viewer"]) == 0
    tls = (d / "agg-host.crt", d / "agg-host.key", d / "ca.crt")
    agg = start_aggregator(mosquitto, tmp_path / "agg", group="sec-roles", id="agg-roles", tls=tls)
    try:
        viewer = await asyncio.to_thread(query, agg, d, "vic")
        agent = await asyncio.to_thread(query, agg, d, "web-01")
    finally:
        agg.stop()
    assert viewer.returncode == 0, viewer.stderr
    assert agent.returncode != 0
    refusal = "Query needs role viewer; presented agent certificate (serverAuth) (CN=web-01)"
    assert refusal in agent.stderr
