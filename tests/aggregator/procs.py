"""Real parts for the aggregator's tests, benchmarks and the demo: ``ioinagg`` processes and a
PostgreSQL server (Debian's package) started in a temporary directory as a non-root user."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness import Broker, free_port, wait_port

__all__ = ["AggProc", "Postgres", "find_pg_bin", "start_aggregator", "start_postgres"]


@dataclass
class AggProc:
    """A real ``ioinagg`` process (plain gRPC; mutual TLS is tested on its own)."""

    workdir: Path
    args: list[str]
    port: int
    metrics_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        path = self.workdir / "ioinagg.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with (self.workdir / "ioinagg.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aggregator", *self.args], stdout=log, stderr=log
            )
        try:
            wait_port(self.port, timeout=30, proc=self.proc)
            wait_for(self._subscribed)
        except BaseException:
            self.stop(signal.SIGKILL)
            raise

    def _subscribed(self) -> bool:
        try:
            return self.metrics().get("ioinagg_broker_connected") == 1.0
        except OSError:  # the metrics endpoint starts just after gRPC
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def metrics(self) -> dict[str, float]:
        """The Prometheus samples, ``name{labels}`` -> value."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out


def start_aggregator(
    broker: Broker,
    workdir: Path,
    *,
    store: str = "",
    group: str = "ioinagg",
    id: str = "agg-1",
    extra: list[str] = (),  # type: ignore[assignment]
    tls: tuple[Path, Path, Path] | None = None,
) -> AggProc:
    """Start ``ioinagg``; ``tls`` = (cert, key, ca) serves mutual TLS, else plain gRPC."""
    port, mport = free_port(), free_port()
    security = (
        ["--cert", str(tls[0]), "--key", str(tls[1]), "--ca", str(tls[2])]
        if tls
        else ["--insecure"]
    )
    args = [
        "--broker", broker.address, "--group", group, "--id", id,
        "--listen", f"127.0.0.1:{port}", "--state-dir", str(workdir / "state"),
        "--metrics", f"127.0.0.1:{mport}", *security, *(["--store", store] if store else []),
        *extra,
    ]  # fmt: skip
    agg = AggProc(workdir, args, port, mport)
    agg.start()
    return agg


def find_pg_bin() -> Path | None:
    """Debian's PostgreSQL binaries (``/usr/lib/postgresql/<version>/bin``), newest first."""
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "postgres").exists():
            return candidate
    found = shutil.which("pg_ctl")
    return Path(found).resolve().parent if found else None


@dataclass
class Postgres:
    """A PostgreSQL server in a directory of its own; ``stop`` / ``start`` for outage tests."""

    bindir: Path
    datadir: Path
    port: int
    user: list[str] = field(default_factory=list)  # runuser prefix when we are root

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self.user, *cmd], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.datadir / "data"), "-o", opts,
            "-l", str(self.datadir / "postgres.log"), "-w", "start",
        )  # fmt: skip
        wait_port(self.port, timeout=30)

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir / "data"), "-m", "fast",
                  "-w", "stop")  # fmt: skip


def start_postgres() -> Postgres:
    """initdb in a fresh directory and start the server on a free port (trust auth, local)."""
    bindir = find_pg_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed: run `make test` (it installs it)")
    datadir = Path(tempfile.mkdtemp(prefix="ioin-pg-"))
    user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root: Debian's `postgres` user runs it
        pw = pwd.getpwnam("postgres")
        os.chown(datadir, pw.pw_uid, pw.pw_gid)
        user = ["runuser", "-u", "postgres", "--"]
    pg = Postgres(bindir, datadir, free_port(), user)
    pg._run(str(bindir / "initdb"), "-D", str(datadir / "data"), "-U", "postgres",
            "--auth=trust", "-E", "UTF8")  # fmt: skip
    pg.start()
    return pg


def wait_for(check: object, timeout: float = 30.0, every: float = 0.2) -> None:
    """Poll ``check()`` until it is true (AssertionError after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {check}")
        time.sleep(every)
