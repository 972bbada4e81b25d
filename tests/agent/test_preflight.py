"""The machine checked before ``ioind`` starts (issue 10, item 6): one line per problem."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import AgentConfig, GrpcConfig, MetricsConfig
from agent.preflight import listen_problem, preflight


def config(state_dir: Path | str, listen: str = "127.0.0.1:0", **kw: object) -> AgentConfig:
    grpc = GrpcConfig(listen=listen, insecure=True)
    return AgentConfig(state_dir=str(state_dir), grpc=grpc, **kw)  # type: ignore[arg-type]


@pytest.fixture
def busy() -> Iterator[int]:
    """A port another socket listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A real read-only tmpfs (the tests run as root, who may write anywhere else)."""
    where = tmp_path / "ro"
    where.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs: {res.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def test_a_good_machine_has_no_problems(tmp_path: Path) -> None:
    assert preflight(config(tmp_path / "state")) == []
    assert (tmp_path / "state").is_dir()
    assert list((tmp_path / "state").iterdir()) == []  # the probe file is gone


def test_a_state_dir_under_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    assert preflight(config(tmp_path / "file" / "state")) == [
        f"state_dir: cannot write '{tmp_path}/file/state': Not a directory"
    ]


def test_a_read_only_state_dir_is_named(read_only: Path) -> None:
    assert preflight(config(read_only)) == [
        f"state_dir: cannot write '{read_only}': Read-only file system"
    ]


def test_a_busy_listen_port_is_named(tmp_path: Path, busy: int) -> None:
    cfg = config(tmp_path, f"127.0.0.1:{busy}", metrics=MetricsConfig(f"127.0.0.1:{busy}"))
    assert preflight(cfg) == [
        f"grpc.listen: cannot listen on 127.0.0.1:{busy}: in use by another process",
        f"metrics.listen: cannot listen on 127.0.0.1:{busy}: in use by another process",
    ]
    assert listen_problem("grpc.listen", "no-such-host.invalid:1") is not None


def test_missing_tls_files_are_named(tmp_path: Path) -> None:
    grpc = GrpcConfig(cert=str(tmp_path / "a.pem"), key=str(tmp_path / "a.key"), ca="/etc/hostname")
    cfg = AgentConfig(state_dir=str(tmp_path), grpc=grpc)
    assert preflight(cfg) == [
        f"grpc.cert: cannot read '{tmp_path}/a.pem': No such file or directory",
        f"grpc.key: cannot read '{tmp_path}/a.key': No such file or directory",
    ]


def run_ioind(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_ioind_on_a_busy_port_or_a_bad_state_dir_exits_with_one_line(
    tmp_path: Path, busy: int
) -> None:
    (tmp_path / "file").write_text("")
    config = tmp_path / "agent.toml"
    config.write_text(
        f'state_dir = "{tmp_path}/file/state"\n'
        f'[grpc]\nlisten = "127.0.0.1:{busy}"\ninsecure = true\n'
    )
    res = run_ioind(config)
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        f"ioind: state_dir: cannot write '{tmp_path}/file/state': Not a directory",
        f"ioind: grpc.listen: cannot listen on 127.0.0.1:{busy}: in use by another process",
    ]
