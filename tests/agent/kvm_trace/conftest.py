"""Fixtures for the kvm-trace backend: skips with a visible reason, QEMU guests, a text counter.

``@pytest.mark.tracefs`` tests need root and tracefs with ``kvm:kvm_pio``; ``@pytest.mark.qemu``
tests also need qemu-system-x86_64, /dev/kvm and Debian's SeaBIOS. Every QEMU started through
``qemu_vm`` is killed at teardown; a failing test prints each guest's console.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.backends.kvm_trace.tracefs import ensure_mounted
from agent.errors import TraceError

TRACEFS = Path("/sys/kernel/tracing")
SEABIOS = Path("/usr/share/seabios/bios.bin")
QEMU = "qemu-system-x86_64"


def _tracefs_problem() -> str | None:
    if os.geteuid() != 0:
        return "tracefs tests need root"
    if not (TRACEFS / "instances").is_dir():
        try:  # a fresh boot may not have it mounted: the backend mounts it too
            ensure_mounted(TRACEFS)
        except TraceError as e:
            return f"tracefs is not mounted at {TRACEFS} and cannot be: {e}"
    if not (TRACEFS / "events/kvm/kvm_pio").is_dir():
        return "kernel has no kvm:kvm_pio tracepoint"
    return None


def _qemu_problem() -> str | None:
    if shutil.which(QEMU) is None:
        return f"{QEMU} is not installed"
    if not SEABIOS.exists():
        return f"SeaBIOS missing ({SEABIOS}): apt-get install seabios"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm is not usable"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("tracefs") or item.get_closest_marker("qemu"):
        problem = _tracefs_problem()
        if problem:
            pytest.skip(problem)
    if item.get_closest_marker("qemu"):
        problem = _qemu_problem()
        if problem:
            pytest.skip(problem)


@dataclass
class Guest:
    """A QEMU process started paused (``-S``); :meth:`cont` lets its vCPUs run."""

    name: str
    proc: subprocess.Popen[bytes]
    monitor: Path
    console: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cont(self) -> None:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.monitor))
            s.sendall(b"cont\n")
            time.sleep(0.1)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def qemu_vm(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Guest]]:
    """Start SeaBIOS guests: ``qemu_vm("first", debug_threads=True)``."""
    guests: list[Guest] = []

    def start(name: str, *, debug_threads: bool = False, bios: Path = SEABIOS) -> Guest:
        monitor, console = tmp_path / f"{name}.mon", tmp_path / f"{name}.log"
        label = f"guest={name}" + (",debug-threads=on" if debug_threads else "")
        argv = [QEMU, "-enable-kvm", "-bios", str(bios), "-nographic", "-display", "none",
                "-no-reboot", "-m", "32", "-name", label, "-S", "-serial", f"file:{console}",
                "-monitor", f"unix:{monitor},server=on,wait=off"]  # fmt: skip
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.STDOUT)  # fmt: skip
        guest = Guest(name, proc, monitor, console)
        guests.append(guest)
        deadline = time.monotonic() + 10
        while not monitor.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"QEMU {name} did not start (exit {proc.returncode})")
            time.sleep(0.05)
        return guest

    yield start
    for guest in guests:
        guest.kill()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for guest in guests:
            text = guest.console.read_text(errors="replace") if guest.console.exists() else ""
            print(f"--- console of {guest.name} ---\n{text[-2000:]}")


class TextCounter:
    """A second tracefs instance counting kvm_pio accesses from its text ``trace`` output.

    Its name does not start with ``ioin-``, so the backend's stale-instance sweep leaves it alone.
    """

    def __init__(self, expr: str) -> None:
        self.path = TRACEFS / "instances" / f"ioincount-{os.getpid()}"
        self.path.mkdir()
        (self.path / "options/record-tgid").write_text("1")
        (self.path / "buffer_size_kb").write_text("2048")
        (self.path / "events/kvm/kvm_pio/filter").write_text(expr)
        (self.path / "events/kvm/kvm_pio/enable").write_text("1")

    def stop(self) -> None:
        (self.path / "events/kvm/kvm_pio/enable").write_text("0")

    def count(self, tgid: int, needle: str) -> int:
        """Lines of the trace from process ``tgid`` containing ``needle``."""
        n = 0
        for line in (self.path / "trace").read_text().splitlines():
            if line.startswith("#") or needle not in line:
                continue
            tgid_field = line.split("(", 1)[1].split(")", 1)[0]
            n += int(tgid_field.strip()) == tgid
        return n

    def remove(self) -> None:
        self.stop()
        self.path.rmdir()


@pytest.fixture
def text_counter() -> Iterator[Callable[[str], TextCounter]]:
    made: list[TextCounter] = []

    def make(expr: str) -> TextCounter:
        counter = TextCounter(expr)
        made.append(counter)
        return counter

    yield make
    for counter in made:
        counter.remove()
