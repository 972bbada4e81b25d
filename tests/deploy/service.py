"""ioind as systemd runs it: a real notify socket, a watchdog interval, stdout on a pipe.

:class:`NotifySocket` is what systemd's manager is to a ``Type=notify`` service: an ``AF_UNIX``
datagram socket whose path goes into ``$NOTIFY_SOCKET``. :class:`ServiceProc` starts a real
``ioind`` with it, its stdout on a pipe that a thread drains (journald's part) until told to stop.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["NotifySocket", "ServiceProc", "write_config"]

F_SETPIPE_SZ = 1031  # fcntl.h (Linux): set a pipe's capacity


class NotifySocket:
    """A bound datagram socket; :meth:`messages` returns each datagram as a dict of fields."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))

    def recv(self, timeout: float) -> dict[str, str] | None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        return dict(line.split("=", 1) for line in data.decode().splitlines())

    def wait_for(self, key: str, value: str | None = None, timeout: float = 20.0) -> dict[str, str]:
        """The first message carrying ``key`` (with ``value`` if given); fails after timeout."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = self.recv(left)
            if msg is not None and key in msg and (value is None or msg[key] == value):
                return msg
        raise TimeoutError(f"no {key}={value or '*'} on {self.path} within {timeout}s")

    def collect(self, seconds: float) -> list[dict[str, str]]:
        """Every message that arrives within ``seconds``."""
        out, deadline = [], time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            msg = self.recv(left)
            if msg is not None:
                out.append(msg)
        return out

    def close(self) -> None:
        self.sock.close()


def write_config(
    workdir: Path, port: int, broker_port: int, extra: str = "", tls: Path | None = None
) -> Path:
    """A sim agent config: gRPC on ``port`` (plain, or mutual TLS with ``tls``/ca.pem,
    server.pem, server.key), the broker on ``broker_port``, ``extra`` top-level keys."""
    config = workdir / "agent.toml"
    security = (
        f'cert = "{tls}/server.pem"\nkey = "{tls}/server.key"\nca = "{tls}/ca.pem"\n'
        if tls
        else "insecure = true\n"
    )
    config.write_text(
        f'host = "svc"\nbackend = "sim"\nstate_dir = "{workdir / "state"}"\n{extra}'
        f'[grpc]\nlisten = "127.0.0.1:{port}"\n{security}'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\nbatch_ms = 20\n'
        "[sim]\nrate = 2000\n"
    )
    return config


@dataclass
class ServiceProc:
    """A real ``ioind --config`` with ``$NOTIFY_SOCKET`` and ``$WATCHDOG_USEC`` set."""

    config: Path
    notify: NotifySocket
    watchdog_s: float
    pipe_bytes: int = 65536
    port: int = 0
    lines: list[str] = field(default_factory=list)
    draining: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        env = os.environ | {
            "NOTIFY_SOCKET": str(self.notify.path),
            "WATCHDOG_USEC": str(int(self.watchdog_s * 1e6)),
        }
        read_fd, write_fd = os.pipe()
        fcntl.fcntl(write_fd, F_SETPIPE_SZ, self.pipe_bytes)
        cmd = [sys.executable, "-m", "agent", "--config", str(self.config)]
        self.proc = subprocess.Popen(cmd, stdout=write_fd, stderr=subprocess.DEVNULL, env=env)
        os.close(write_fd)
        self.draining.set()
        self._reader = threading.Thread(target=self._drain, args=(read_fd,), daemon=True)
        self._reader.start()

    def _drain(self, fd: int) -> None:
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            rest = b""
            while self.draining.wait() and (chunk := pipe.read(65536)):
                *whole, rest = (rest + chunk).split(b"\n")
                self.lines.extend(line.decode(errors="replace") for line in whole)

    def wait_line(self, event: str, timeout: float = 5.0) -> dict[str, object]:
        """The first JSON log line on stdout whose ``event`` is ``event``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                record: dict[str, object] = json.loads(line)
                if record.get("event") == event:
                    return record
            time.sleep(0.05)
        raise TimeoutError(f"no '{event}' log line on ioind's stdout within {timeout}s")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> int:
        self.draining.set()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        return self.proc.returncode
