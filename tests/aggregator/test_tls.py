"""The aggregator's gRPC service uses the same mutual TLS as the agents; a full disk under the
embedded store is counted, retried and loses nothing."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.batch import pack_batch
from tests.aggregator.conftest import settle
from tests.aggregator.procs import AggProc, wait_for
from tests.aggregator.test_bad_input import PB, block, publish
from tests.controller.pki import make_pki
from tests.harness import Broker

pytestmark = pytest.mark.slow


def ioinctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller.cli", *args], capture_output=True, text=True, timeout=60
    )


def payload(host: str, first: int, n: int, port: int = 0x3F8) -> bytes:
    return pack_batch(host, "e1", block(n, first, time.time_ns(), port=port)).SerializeToString()


async def test_query_over_mutual_tls_and_refusal_without_a_client_cert(
    aggregator_factory: Callable[..., AggProc], mosquitto: Broker, tmp_path: Path
) -> None:
    pki = make_pki(tmp_path / "pki")
    agg = aggregator_factory(id="agg-tls", tls=(pki.server_cert, pki.server_key, pki.ca))
    await publish(mosquitto.port, [("ioin/v1/tls-a/events/in-3f8", payload("tls-a", 1, 9), PB)])
    creds = ["--ca", str(pki.ca), "--cert", str(pki.client_cert), "--key", str(pki.client_key)]
    query = ["query", "--aggregator", agg.address, "-o", "csv", *creds]
    wait_for(lambda: "tls-a,9" in ioinctl(*query).stdout)
    plain = await asyncio.to_thread(ioinctl, "query", "--aggregator", agg.address, "--insecure")
    assert plain.returncode != 0
    assert "aggregator" in plain.stderr


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: a disk that really fills up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], check=True)
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)
    shutil.rmtree(disk, ignore_errors=True)


def fill(disk: Path) -> Path:
    """Write a ballast file until the disk is full; returns it."""
    ballast = disk / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    return ballast


async def test_full_disk_is_counted_retried_and_loses_nothing(
    aggregator_factory: Callable[..., AggProc], mosquitto: Broker, small_disk: Path
) -> None:
    agg = aggregator_factory(id="agg-full", store=f"sqlite:{small_disk / 'agg.db'}")
    ballast = fill(small_disk)
    topic = "ioin/v1/full-a/events/in-3f8"
    items = [(topic, payload("full-a", 1 + 500 * i, 500, 0x3F0 + i), PB) for i in range(40)]
    await publish(mosquitto.port, items)
    wait_for(lambda: agg.metrics()["ioinagg_store_errors_total"] > 0, timeout=30)
    assert agg.proc is not None
    assert agg.proc.poll() is None
    ballast.unlink()  # space again: the retried commits go through
    assert await settle(agg, {"full-a": 20_000}) == {"full-a": 20_000}
    assert agg.metrics()["ioinagg_events_total"] == 20_000
    assert "store-failed" in agg.log
    agg.stop()  # before the disk goes away
