"""Fixtures for the deploy tests: a notify socket and ioind processes run as systemd would."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.service import NotifySocket, ServiceProc, write_config
from tests.harness import Broker, free_port

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Dist:
    """What ``python -m build`` made, and a wheelhouse with the wheel's dependencies."""

    sdist: Path
    wheel: Path
    wheelhouse: Path


def run(*cmd: str | Path, cwd: Path = REPO, timeout: float = 110) -> str:
    done = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{cmd}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """sdist, then the wheel built from it (as ``python -m build`` does), once per session.

    ``--no-isolation``: the dev venv has the build requirements, and the session has no time
    for a fresh build environment. The wheelhouse comes from pip's cache, so that the installs
    into fresh venvs run with ``--no-index``.
    """
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ".")
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    house = out / "wheelhouse"
    run(sys.executable, "-m", "pip", "wheel", "-q", "-w", house, wheel)
    return Dist(sdist, wheel, house)


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
