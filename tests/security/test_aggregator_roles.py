"""The aggregator under the security model: its gRPC service applies the agents' roles (a real
ioinagg with mutual TLS, certificates from ``ioinctl pki``, queried with ``ioinctl query`` as a
viewer and as an agent), and it reads the certificate-only bus with a certificate of its own."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.batch import pack_batch
from controller.cli import main as ioinctl
from tests.aggregator.conftest import settle
from tests.aggregator.procs import AggProc, start_aggregator
from tests.aggregator.test_bad_input import PB, block, props
from tests.harness import Broker
from tests.security.conftest import SecureBroker
from tests.security.test_bus import client

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


async def test_the_aggregator_reads_the_secure_bus_with_its_certificate(
    secure_broker: SecureBroker, tmp_path: Path
) -> None:
    """ioinagg with ``--mqtt-ca/--mqtt-cert/--mqtt-key`` counts host-a's events from the shipped
    broker config; what a certificate outside the ACL sends never reaches it."""
    b = secure_broker
    mqtt = ["--mqtt-ca", str(b.pki / "ca.crt")]
    mqtt += ["--mqtt-cert", str(b.pki / "agg-1.crt"), "--mqtt-key", str(b.pki / "agg-1.key")]
    agg = start_aggregator(
        Broker(b.port, b.workdir), tmp_path / "agg", group="sec", id="agg-1", extra=mqtt
    )
    try:
        ts = time.time_ns()
        async with client(b, "host-a") as a, client(b, "stranger") as s:
            for i in range(5):
                for c, host in ((a, "host-a"), (s, "stranger")):
                    batch = pack_batch(host, "e1", block(100, 1 + 100 * i, ts)).SerializeToString()
                    await c.publish(
                        f"ioin/v1/{host}/events/in-3f8", batch, qos=1, properties=props(PB)
                    )
        counts = await settle(agg, {"host-a": 500})
    finally:
        agg.stop()
    assert counts == {"host-a": 500}
    assert re.search(r"New client connected from \S+ as agg-1 \(p5", b.log)
