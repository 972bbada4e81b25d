"""Thread → VM / vCPU mapping, on a fake /proc tree and on this process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.backends.kvm_trace.procs import ProcMap, vm_name_from_cmdline


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["qemu", "-name", "guest=web1,debug-threads=on"], "web1"),
        (["qemu", "-name", "db,process=x"], "db"),
        (["qemu", "-m", "32"], ""),
        (["firecracker", "--id", "x"], ""),
    ],
)
def test_vm_name_from_cmdline(argv: list[str], name: str) -> None:
    assert vm_name_from_cmdline(argv) == name


def _task(proc: Path, pid: int, tid: int, name: str, syscall: str = "running") -> None:
    for base in (proc / str(tid), proc / str(pid) / "task" / str(tid)):
        base.mkdir(parents=True, exist_ok=True)
        (base / "status").write_text(f"Name:\t{name}\nTgid:\t{pid}\nPid:\t{tid}\n")
        (base / "syscall").write_text(syscall + "\n")


@pytest.fixture
def fake_proc(tmp_path: Path) -> Path:
    """VM 100 (QEMU, unnamed vCPU threads), VM 200 (named threads), plain process 300."""
    proc = tmp_path / "proc"
    for pid, argv, fds in [
        (100, "qemu-system-x86_64\0-name\0guest=alpha\0", ["/dev/kvm", "anon_inode:kvm-vm",
                                                         "anon_inode:kvm-vcpu:0",
                                                         "anon_inode:kvm-vcpu:1"]),
        (200, "qemu-system-x86_64\0-m\0032\0", ["anon_inode:kvm-vm", "anon_inode:kvm-vcpu:0"]),
        (300, "sleep\0100\0", ["/dev/null"]),
    ]:  # fmt: skip
        (proc / str(pid) / "fd").mkdir(parents=True)
        (proc / str(pid) / "cmdline").write_text(argv)
        (proc / str(pid) / "comm").write_text(argv.split("\0")[0][:15] + "\n")
        for i, target in enumerate(fds):
            os.symlink(target, proc / str(pid) / "fd" / str(i + 3))
    _task(proc, 100, 100, "qemu-system-x86")
    _task(proc, 100, 101, "qemu-system-x86", "16 0x6 0xae80 0x0")  # in KVM_RUN on fd 6: vcpu 1
    _task(proc, 100, 102, "qemu-system-x86", "running")
    _task(proc, 100, 103, "kvm-nx-lpage-re", "16 0x6 0xae80 0x0")
    _task(proc, 200, 200, "qemu-system-x86")
    _task(proc, 200, 201, "CPU 0/KVM")
    _task(proc, 300, 300, "sleep")
    return proc


def test_threads_map_to_vm_and_vcpu(fake_proc: Path) -> None:
    procs = ProcMap(fake_proc)
    assert procs.thread(101) == (100, "alpha", 1, True)
    assert procs.thread(102) == (100, "alpha", 0, False)
    assert procs.thread(103) == (100, "alpha", 0, False)  # a kernel thread is never probed
    assert procs.thread(201) == (200, "qemu-system-x86", 0, True)
    assert procs.thread(999) == (0, "", 0, True)


def test_vms_and_threads(fake_proc: Path) -> None:
    procs = ProcMap(fake_proc)
    assert procs.is_vm(100)
    assert procs.is_vm(200)
    assert not procs.is_vm(300)
    assert not procs.is_vm(12345)
    assert procs.tids(100) == {100, 101, 102, 103}
    assert procs.tids(12345) == frozenset()
    assert procs.find_vms() == [(100, 2), (200, 1)]


def test_refresh_probes_again_and_forgets_the_dead(fake_proc: Path) -> None:
    procs = ProcMap(fake_proc)
    assert procs.thread(102).known_vcpu is False
    _task(fake_proc, 100, 102, "qemu-system-x86", "16 0x5 0xae80 0x0")  # now in KVM_RUN, vcpu 0
    procs.thread(201)
    for f in (fake_proc / "201").iterdir():
        f.unlink()
    (fake_proc / "201").rmdir()
    procs.refresh()
    assert procs.thread(102) == (100, "alpha", 0, True)
    assert procs.thread(201) == (0, "", 0, True)


def test_this_process_is_not_a_vm() -> None:
    procs = ProcMap()
    assert not procs.is_vm(os.getpid())
    assert os.getpid() in procs.tids(os.getpid())
    assert procs.thread(os.getpid()).vm == os.getpid()
