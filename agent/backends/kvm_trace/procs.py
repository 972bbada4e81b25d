"""Which VM and vCPU a kvm_pio record belongs to, from /proc.

The tracepoint gives the thread id (``common_pid``) of the vCPU thread that executed the IN/OUT.
Its thread group id (``Tgid:`` in /proc/<tid>/status) is the VM's host process; the VM's name is
QEMU's ``-name guest=X`` / ``-name X`` from /proc/<pid>/cmdline, else the process name.

The vCPU index comes from the thread's name: QEMU's "CPU 1/KVM" (only with ``-name
...,debug-threads=on`` in QEMU 7), Firecracker's "fc_vcpu 1", cloud-hypervisor's "vcpu1". Unnamed
threads are probed: a vCPU thread sits in ``ioctl(fd, KVM_RUN)`` most of the time, so
/proc/<tid>/syscall reads "16 <fd> 0xae80 ..." (x86-64 ``__NR_ioctl`` 16; ``KVM_RUN`` =
``_IO(0xAE, 0x80)``, include/uapi/linux/kvm.h) and the fd links to ``anon_inode:kvm-vcpu:N``
(virt/kvm/kvm_main.c). Unknown indexes read 0 and are probed again on each ``refresh``.
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path
from typing import NamedTuple

__all__ = ["ProcMap", "ThreadInfo", "vm_name_from_cmdline"]

_VCPU_NAME = re.compile(r"CPU (\d+)/KVM|fc_vcpu (\d+)|vcpu(\d+)\Z")
_SYSCALL_IOCTL, _KVM_RUN = 16, 0xAE80
_VCPU_FD = re.compile(r"anon_inode:kvm-vcpu:(\d+)")


class ThreadInfo(NamedTuple):
    vm: int  # host pid of the VM process (0: unknown, the thread is gone)
    vm_name: str
    vcpu: int
    known_vcpu: bool


def vm_name_from_cmdline(argv: list[str]) -> str:
    """QEMU's ``-name`` value (``guest=X`` or the first bare item), or ``""``."""
    for flag, value in itertools.pairwise(argv):
        if flag in ("-name", "--name"):
            for item in value.split(","):
                key, eq, val = item.partition("=")
                if not eq:
                    return key
                if key == "guest":
                    return val
    return ""


class ProcMap:
    """Cached thread → (VM, vCPU) lookups, safe to call from reader threads."""

    def __init__(self, proc: Path = Path("/proc")) -> None:
        self._proc = proc
        self._threads: dict[int, ThreadInfo] = {}
        self._names: dict[int, str] = {}

    def thread(self, tid: int) -> ThreadInfo:
        info = self._threads.get(tid)
        if info is None:
            info = self._threads[tid] = self._resolve(tid)
        return info

    def is_vm(self, pid: int) -> bool:
        """True if ``pid`` is a process holding a KVM VM fd (``anon_inode:kvm-vm``)."""
        fd_dir = self._proc / str(pid) / "fd"
        try:
            return any(_readlink(fd_dir / fd) == "anon_inode:kvm-vm" for fd in os.listdir(fd_dir))
        except OSError:
            return False

    def tids(self, pid: int) -> frozenset[int]:
        """Every thread of process ``pid`` (empty if it is gone)."""
        try:
            return frozenset(int(t) for t in os.listdir(self._proc / str(pid) / "task"))
        except OSError:
            return frozenset()

    def vm_name(self, pid: int) -> str:
        name = self._names.get(pid)
        if name is None:
            try:
                raw = (self._proc / str(pid) / "cmdline").read_bytes()
                name = vm_name_from_cmdline(raw.decode(errors="replace").split("\0"))
                name = name or (self._proc / str(pid) / "comm").read_text().strip()
            except OSError:
                name = ""
            self._names[pid] = name
        return name

    def find_vms(self) -> list[tuple[int, int]]:
        """Every VM process on the host: ``(pid, vCPU count)`` from its KVM fds."""
        vms = []
        for entry in os.listdir(self._proc):
            if not entry.isdigit():
                continue
            try:
                links = [_readlink(self._proc / entry / "fd" / fd)
                         for fd in os.listdir(self._proc / entry / "fd")]  # fmt: skip
            except OSError:
                continue
            if "anon_inode:kvm-vm" in links:
                vms.append((int(entry), sum(bool(_VCPU_FD.fullmatch(x)) for x in links)))
        return sorted(vms)

    def refresh(self) -> None:
        """Forget threads that are gone; probe vCPU indexes not known yet."""
        for tid, info in list(self._threads.items()):
            if not (self._proc / str(tid)).exists():
                self._threads.pop(tid, None)
                if info.vm == tid:
                    self._names.pop(tid, None)
            elif not info.known_vcpu and info.vm:
                self._threads[tid] = self._resolve(tid)

    def _resolve(self, tid: int) -> ThreadInfo:
        base = self._proc / str(tid)
        try:
            status = (base / "status").read_text()
        except OSError:
            return ThreadInfo(0, "", 0, True)
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        pid = int(fields.get("Tgid", tid))
        vcpu = _vcpu_from_name(fields.get("Name", "").strip())
        if vcpu is None and not fields.get("Name", "").startswith("kvm-"):
            vcpu = _vcpu_from_syscall(self._proc, pid, tid)
        return ThreadInfo(pid, self.vm_name(pid), vcpu or 0, vcpu is not None)


def _readlink(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def _vcpu_from_name(name: str) -> int | None:
    m = _VCPU_NAME.match(name)
    return None if m is None else int(next(g for g in m.groups() if g is not None))


def _vcpu_from_syscall(proc: Path, pid: int, tid: int) -> int | None:
    try:
        parts = (proc / str(pid) / "task" / str(tid) / "syscall").read_text().split()
    except OSError:
        return None
    if len(parts) < 3 or parts[0] != str(_SYSCALL_IOCTL) or int(parts[2], 16) != _KVM_RUN:
        return None
    m = _VCPU_FD.fullmatch(_readlink(proc / str(pid) / "fd" / str(int(parts[1], 16))))
    return None if m is None else int(m[1])
