"""Real parts for tests: a mosquitto broker on a free port and real ioind processes.

Used by the fixtures in tests/conftest.py; also importable by benchmarks and the demo.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["AgentProc", "Broker", "free_port", "start_agent", "start_broker", "wait_port"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(
    port: int, timeout: float = 10.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Broker:
    """A mosquitto process; ``stop`` / ``start`` restart it on the same port (fault tests)."""

    port: int
    workdir: Path
    host: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = None
    persistent: bool = False  # keep sessions and queued messages across a restart

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        persistence = (
            f"persistence true\npersistence_location {self.workdir}/\n"
            if self.persistent
            else "persistence false\n"
        )
        # As root mosquitto switches to the `mosquitto` user, which cannot write our workdir.
        user = "user root\n" if os.geteuid() == 0 else ""
        conf.write_text(
            f"{user}listener {self.port} 127.0.0.1\nallow_anonymous true\n{persistence}"
            "max_queued_messages 1000000\nmax_inflight_messages 100\n"
        )
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        with (self.workdir / "mosquitto.log").open("ab") as log:
            self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=log, stderr=log)
        wait_port(self.port, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.proc = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def start_broker(workdir: Path | None = None, *, persistent: bool = False) -> Broker:
    broker = Broker(free_port(), workdir or Path(tempfile.mkdtemp(prefix="mosq-")))
    broker.persistent = persistent
    broker.start()
    return broker


@dataclass
class AgentProc:
    """A real ``ioind`` process."""

    host_id: str
    port: int
    workdir: Path
    config: Path
    proc: subprocess.Popen[bytes] | None = None
    extra: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log(self) -> str:
        path = self.workdir / "ioind.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> None:
        cmd = [sys.executable, "-m", "agent", "--config", str(self.config), *self.extra]
        with (self.workdir / "ioind.log").open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=os.environ.copy())
        wait_port(self.port, timeout=20, proc=self.proc)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        rc = self.proc.returncode
        self.proc = None
        return rc


def start_agent(
    host_id: str,
    broker: Broker,
    workdir: Path,
    *,
    backend: str = "sim",
    extra_toml: str = "",
    mqtt_extra: str = "",
    sim_rate: float = 2000.0,
    tls: tuple[Path, Path, Path] | None = None,
    flags: Sequence[str] = (),
) -> AgentProc:
    """Write a config for ``host_id`` and start ``ioind`` with it (sim backend by default).

    ``tls`` = (cert, key, ca) serves gRPC with mutual TLS; otherwise plain gRPC (``insecure``).
    ``flags`` are added to the ``ioind`` command line (e.g. ``["--label", "role=web"]``).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    if "batch_ms" not in mqtt_extra:
        mqtt_extra = "batch_ms = 20\n" + mqtt_extra  # tests: short batches, quick assertions
    port = free_port()
    config = workdir / "agent.toml"
    grpc_security = (
        f'cert = "{tls[0]}"\nkey = "{tls[1]}"\nca = "{tls[2]}"\n' if tls else "insecure = true\n"
    )
    config.write_text(
        f'host = "{host_id}"\nbackend = "{backend}"\nstate_dir = "{workdir / "state"}"\n'
        f'[grpc]\nlisten = "127.0.0.1:{port}"\n{grpc_security}'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n{mqtt_extra}'
        f"[sim]\nrate = {sim_rate}\nvms = 2\ncores = 2\n{extra_toml}"
    )
    agent = AgentProc(host_id, port, workdir, config, extra=list(flags))
    agent.start()
    return agent
