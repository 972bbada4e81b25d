"""The notify protocol itself, against real unix datagram sockets (path and abstract)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from agent.sdnotify import Notifier, watchdog_interval
from tests.deploy.service import NotifySocket


def test_messages_are_newline_separated_assignments_in_one_datagram(tmp_path: Path) -> None:
    sock = NotifySocket(tmp_path / "n.sock")
    notifier = Notifier(str(sock.path))
    assert notifier.ready("backend sim, 0 hooks")
    assert sock.recv(1) == {"READY": "1", "STATUS": "backend sim, 0 hooks"}
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    msg = sock.recv(1)
    assert msg is not None
    assert msg["RELOADING"] == "1"
    assert before <= int(msg["MONOTONIC_USEC"]) <= before + 5_000_000
    assert notifier.sent == 2
    notifier.close()
    sock.close()


def test_an_at_sign_names_the_abstract_namespace() -> None:
    name = f"ioind-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(b"\0" + name.encode())
        server.settimeout(1)
        notifier = Notifier("@" + name)
        assert notifier.watchdog()
        assert server.recv(100) == b"WATCHDOG=1"
        notifier.close()


def test_from_env_takes_the_variables_out_of_the_environment(tmp_path: Path) -> None:
    env = {"NOTIFY_SOCKET": str(tmp_path / "x"), "WATCHDOG_USEC": "3000000", "PATH": "/bin"}
    notifier = Notifier.from_env(env)
    assert notifier.enabled
    notifier.close()
    assert watchdog_interval(env) == 3.0
    assert env == {"PATH": "/bin"}  # children (the fast path's cc) do not speak for us


def test_a_watchdog_for_another_pid_or_none_is_not_ours() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}) is None
    pid = str(os.getpid())
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": pid}) == 2.0
    assert watchdog_interval({"WATCHDOG_USEC": "junk"}) is None
    assert watchdog_interval({}) is None


def test_without_a_socket_nothing_is_sent_and_a_dead_socket_is_counted(tmp_path: Path) -> None:
    assert not Notifier(None).ready("x")
    assert not Notifier.from_env({}).enabled
    gone = Notifier(str(tmp_path / "nobody-listens"))
    assert not gone.watchdog()
    assert (gone.sent, gone.failed) == (0, 1)
    gone.close()
