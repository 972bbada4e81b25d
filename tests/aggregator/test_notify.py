"""ioinagg under ``Type=notify``: a real ioinagg process against a real mosquitto, with a real
``AF_UNIX`` datagram socket as ``NOTIFY_SOCKET`` (as systemd's manager binds one)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.aggregator.procs import AggProc
from tests.deploy.service import NotifySocket

pytestmark = pytest.mark.slow


def test_ready_status_watchdog_and_stopping(
    aggregator_factory: Callable[..., AggProc], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock = NotifySocket(tmp_path / "notify")
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock.path))
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # a ping every 0.2 s
    try:
        agg = aggregator_factory()  # returns once gRPC listens and the bus is subscribed
        ready = sock.wait_for("READY", "1")
        assert ready["STATUS"].endswith("store sqlite")
        messages = sock.collect(2.0)
        assert 6 <= sum(m.get("WATCHDOG") == "1" for m in messages) <= 12
        assert any(m.get("STATUS", "").startswith("broker connected") for m in [ready, *messages])
        agg.stop(signal.SIGTERM)
        sock.wait_for("STOPPING", "1")
    finally:
        sock.close()
