"""tracefs: mounting it, and the agent's own instance ``instances/ioin-<host>``.

Every ``OSError`` from tracefs becomes a :class:`~agent.errors.TraceError` naming the file here,
in :func:`_io` (one translation boundary). The top-level instance is never written.

Ownership: while an instance is in use its agent holds an ``flock`` on ``<lock_dir>/<name>.lock``
(which also holds the owner's pid). At start every ``ioin-*`` instance whose lock is free — its
agent died — is removed (``rmdir``; Documentation/trace/ftrace.rst, "Instances").
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from agent.errors import TraceError

__all__ = ["DEFAULT_LOCK_DIR", "INSTANCE_PREFIX", "Instance", "ensure_mounted"]

INSTANCE_PREFIX = "ioin-"
DEFAULT_LOCK_DIR = Path("/run/ioind")
PIO_EVENT = "events/kvm/kvm_pio"


@contextlib.contextmanager
def _io(path: Path | str, what: str = "") -> Iterator[None]:
    try:
        yield
    except OSError as e:
        raise TraceError(str(path), e.errno or 0, what or e.strerror or "") from e


def ensure_mounted(root: Path) -> None:
    """Mount tracefs on ``root`` unless it is mounted already (mount(2) needs CAP_SYS_ADMIN)."""
    if root.is_dir() and not os.access(root, os.R_OK | os.X_OK):
        raise TraceError(str(root), 13, "no permission to use tracefs (ioind kvm-trace needs root)")
    if (root / "instances").is_dir():
        return
    if not root.is_dir():
        raise TraceError(str(root), 2, "no tracefs mount point (kernel without CONFIG_TRACING?)")
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.mount(b"nodev", str(root).encode(), b"tracefs", 0, None) != 0:
        err = ctypes.get_errno()
        raise TraceError(str(root), err, f"cannot mount tracefs: {os.strerror(err)}")


class Instance:
    """One tracefs instance owned by this process; files addressed relative to it."""

    def __init__(self, root: Path, name: str, lock_dir: Path = DEFAULT_LOCK_DIR) -> None:
        self.root = root
        self.name = name
        self.path = root / "instances" / name
        self._lock_dir = lock_dir
        self._lock_fd = -1
        self.removed_stale: list[str] = []

    def create(self) -> None:
        """Mount if needed, sweep stale instances, take the lock and ``mkdir`` the instance."""
        ensure_mounted(self.root)
        if not (self.root / PIO_EVENT).is_dir():
            raise TraceError(str(self.root / PIO_EVENT), 2, "kernel has no kvm:kvm_pio tracepoint")
        with _io(self._lock_dir):
            self._lock_dir.mkdir(parents=True, exist_ok=True)
        self.removed_stale = self.sweep_stale()
        self._lock_fd = self._try_lock(self.name)
        if self._lock_fd < 0:
            owner = self._owner(self.name)
            raise TraceError(str(self.path), 16, f"instance in use by another ioind (pid {owner})")
        os.ftruncate(self._lock_fd, 0)
        os.write(self._lock_fd, f"{os.getpid()}\n".encode())
        if self.path.exists():
            self._rmdir(self.path)  # ours from a crashed run
        with _io(self.path, "cannot create instance"):
            self.path.mkdir()

    def remove(self) -> None:
        """``rmdir`` the instance (readers must be closed) and release the lock."""
        try:
            if self.path.exists():
                self._rmdir(self.path)
        finally:
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1
                with contextlib.suppress(OSError):
                    (self._lock_dir / f"{self.name}.lock").unlink()

    def sweep_stale(self) -> list[str]:
        """Remove ``ioin-*`` instances whose owner is gone; returns their names."""
        removed = []
        inst = self.root / "instances"
        for entry in sorted(inst.glob(f"{INSTANCE_PREFIX}*")):
            fd = self._try_lock(entry.name)
            if fd < 0:
                continue  # a live agent holds it
            try:
                self._rmdir(entry)
                removed.append(entry.name)
            except TraceError:
                pass  # busy (someone has its files open): leave it
            finally:
                os.close(fd)
        return removed

    def write(self, rel: str, value: str) -> None:
        path = self.path / rel
        with _io(path), open(path, "w") as f:
            f.write(value)

    def read(self, rel: str) -> str:
        path = self.path / rel
        with _io(path), open(path) as f:
            return f.read()

    def exists(self, rel: str) -> bool:
        return (self.path / rel).exists()

    def cpu_stat(self, cpu: int, key: str) -> int:
        """A counter from ``per_cpu/cpu<cpu>/stats`` ("overrun", "dropped events"); 0 if absent."""
        try:
            text = self.read(f"per_cpu/cpu{cpu}/stats")
        except TraceError:
            return 0
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip().isdigit():
                return int(value)
        return 0

    def open_raw(self, cpu: int) -> int:
        """A non-blocking fd on ``per_cpu/cpu<cpu>/trace_pipe_raw``."""
        path = self.path / f"per_cpu/cpu{cpu}/trace_pipe_raw"
        with _io(path):
            return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)

    def _try_lock(self, name: str) -> int:
        path = self._lock_dir / f"{name}.lock"
        with _io(path):
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return -1
        return fd

    def _owner(self, name: str) -> str:
        with contextlib.suppress(OSError):
            return (self._lock_dir / f"{name}.lock").read_text().strip() or "?"
        return "?"

    @staticmethod
    def _rmdir(path: Path) -> None:
        with _io(path, "cannot remove instance"):
            path.rmdir()
