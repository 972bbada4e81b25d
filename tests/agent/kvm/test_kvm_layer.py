"""The KVM layer on real /dev/kvm: decoded exits, the KvmError boundary, the port bus."""

from __future__ import annotations

import ctypes
import errno
import mmap
from collections.abc import Iterator

import pytest

from agent.backends.kvm import _sys as S
from agent.backends.kvm._kvm import Kvm, Vcpu
from agent.backends.kvm.bus import BusError, PortBus
from agent.backends.kvm.exits import (
    FailEntry,
    Hlt,
    InternalError,
    Intr,
    IoIn,
    IoOut,
    IrqWindowOpen,
    Mmio,
    SystemEvent,
)  # fmt: skip
from agent.errors import KvmError

pytestmark = pytest.mark.kvm


@pytest.fixture
def vcpu(kvm: Kvm) -> Iterator[Vcpu]:
    """A real-mode vCPU over 64 KiB of RAM at 0, code expected at 0x1000."""
    vm = kvm.create_vm()
    mem = mmap.mmap(-1, 0x10000)
    vm.set_memory(0, 0, len(mem), ctypes.addressof(ctypes.c_char.from_buffer(mem)))
    v = vm.create_vcpu(0)
    sregs = v.get_sregs()
    sregs.cs.base = sregs.cs.selector = 0
    v.set_sregs(sregs)
    v.set_regs(S.KvmRegs(rip=0x1000, rflags=2, rdx=0x1234))
    v.mem = mem  # type: ignore[attr-defined]
    yield v
    v.close()
    vm.close()
    mem.close()


def load(v: Vcpu, code: bytes) -> None:
    v.mem[0x1000 : 0x1000 + len(code)] = code  # type: ignore[attr-defined]


def test_io_exits_decode(vcpu: Vcpu) -> None:
    load(vcpu, bytes.fromhex("b042 ee ec 66ed"))  # mov al,0x42; out dx,al; in al,dx; in eax,dx
    out = vcpu.run()
    assert isinstance(out, IoOut)
    assert out == IoOut(port=0x1234, size=1, count=1, data_offset=out.data_offset)
    assert vcpu.io_bytes(out.data_offset, 1) == b"\x42"
    assert vcpu.run() == IoIn(0x1234, 1, 1, out.data_offset)
    assert vcpu.run() == IoIn(0x1234, 4, 1, out.data_offset)


def test_hlt_mmio_and_intr(vcpu: Vcpu) -> None:
    load(vcpu, bytes.fromhex("f4"))
    assert vcpu.run() == Hlt()
    vcpu.immediate_exit = True
    assert vcpu.run() == Intr()
    vcpu.immediate_exit = False
    # mov ax, 0x2000; mov ds, ax ... read above RAM: mov eax, [0xFFF0] with DS=0xF000 → 0xFFFF0
    load(vcpu, bytes.fromhex("b800f0 8ed8 66a1f0ff"))
    vcpu.set_regs(S.KvmRegs(rip=0x1000, rflags=2))
    assert vcpu.run() == Mmio(addr=0xFFFF0, length=4, is_write=False, data=bytes(4))
    vcpu.immediate_exit = True  # complete the pending MMIO read without running on
    assert vcpu.run() == Intr()
    vcpu.immediate_exit = False


def test_rare_exits_decode_from_kvm_run(vcpu: Vcpu) -> None:
    """FAIL_ENTRY / INTERNAL_ERROR / others are hard to provoke; decode their layout."""
    ex = vcpu.kvm_run.exit
    ex.fail_entry.hardware_entry_failure_reason, ex.fail_entry.cpu = 33, 1
    assert vcpu.decode(S.EXIT_FAIL_ENTRY) == FailEntry(reason=33, cpu=1)
    ex.internal.suberror, ex.internal.ndata = 1, 2
    ex.internal.data[0], ex.internal.data[1] = 7, 8
    assert vcpu.decode(S.EXIT_INTERNAL_ERROR) == InternalError(suberror=1, data=(7, 8))
    assert vcpu.decode(S.EXIT_SYSTEM_EVENT) == SystemEvent(type=1, data=(7, 8))
    assert vcpu.decode(S.EXIT_IRQ_WINDOW_OPEN) == IrqWindowOpen()


def test_ioctl_errors_become_kvm_error(kvm: Kvm) -> None:
    with kvm.create_vm() as vm:
        mem = mmap.mmap(-1, 0x10000)
        vm.set_memory(0, 0, 0x10000, ctypes.addressof(ctypes.c_char.from_buffer(mem)))
        with pytest.raises(KvmError) as info:  # a second slot overlapping the first
            vm.set_memory(1, 0x8000, 0x10000, ctypes.addressof(ctypes.c_char.from_buffer(mem)))
        assert info.value.op == "KVM_SET_USER_MEMORY_REGION"
        assert info.value.errno == errno.EEXIST
        vm.close()
        mem.close()
    with pytest.raises(KvmError) as opened:
        Kvm("/nonexistent/kvm")
    assert opened.value.errno == errno.ENOENT


def test_bus_refuses_overlaps_and_counts_open_bus() -> None:
    class Dev:
        def __init__(self) -> None:
            self.seen: list[tuple[int, int, int]] = []

        def read(self, offset: int, size: int) -> int:
            return 0x40 + offset

        def write(self, offset: int, size: int, value: int) -> None:
            self.seen.append((offset, size, value))

    bus, dev = PortBus(), Dev()
    bus.register(0x3F8, 8, dev)
    with pytest.raises(BusError, match="overlap"):
        bus.register(0x3FF, 2, Dev())
    with pytest.raises(BusError):
        bus.register(0xFFFF, 2, Dev())
    assert bus.read(0x3FD, 1) == 0x45  # devices see offsets
    bus.write(0x3F9, 2, 0x1234)
    assert dev.seen == [(1, 2, 0x1234)]
    assert (bus.read(0x80, 1), bus.read(0x80, 2), bus.read(0x81, 4)) == (0xFF, 0xFFFF, 0xFFFFFFFF)
    bus.write(0x80, 1, 0)
    assert bus.open_bus_counts() == {0x80: (2, 1), 0x81: (1, 0)}
