"""Fixtures for the deploy tests: a notify socket and ioind processes run as systemd would."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.deploy.service import NotifySocket, ServiceProc, write_config
from tests.harness import Broker, free_port


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


@pytest.fixture
def mosquitto_port(mosquitto: Broker) -> int:
    return mosquitto.port


@pytest.fixture
def service(
    mosquitto: Broker, notify_socket: NotifySocket, tmp_path: Path
) -> Iterator[Callable[..., ServiceProc]]:
    """``service(extra_toml, watchdog_s=, pipe_bytes=, broker_port=, tls=)`` starts ioind (see
    :func:`~tests.deploy.service.write_config`); stopped at the end."""
    started: list[ServiceProc] = []

    def start(
        extra: str = "",
        *,
        watchdog_s: float = 0.4,
        pipe_bytes: int = 65536,
        broker_port: int | None = None,
        tls: Path | None = None,
    ) -> ServiceProc:
        port = free_port()
        config = write_config(tmp_path, port, broker_port or mosquitto.port, extra, tls)
        svc = ServiceProc(config, notify_socket, watchdog_s, pipe_bytes, port=port)
        svc.start()
        started.append(svc)
        return svc

    yield start
    for svc in started:
        svc.stop()
