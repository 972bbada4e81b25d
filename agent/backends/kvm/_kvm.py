"""The KVM layer: ``Kvm`` (the /dev/kvm system fd) → ``Vm`` → ``Vcpu``, each owning its fd.

This is the one boundary where ``OSError`` from an ioctl, open or mmap becomes
:class:`~agent.errors.KvmError` ``(op, errno)``. Objects are context managers and close their fd
(and, for a vCPU, its ``kvm_run`` mapping) on exit; closing twice is harmless.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import os
from types import TracebackType
from typing import Any, Self

from agent.backends.kvm import _sys as S
from agent.backends.kvm.exits import (
    Exit,
    FailEntry,
    Hlt,
    InternalError,
    Intr,
    IoIn,
    IoOut,
    IrqWindowOpen,
    Mmio,
    Shutdown,
    SystemEvent,
    Unknown,
)
from agent.errors import KvmError

__all__ = ["Kvm", "Vcpu", "Vm"]

_ioctl = S.ioctl
_get_errno = ctypes.get_errno


def _call(op: str, fd: int, request: int, arg: Any = None) -> int:
    """ioctl through libc; a negative result becomes ``KvmError(op, errno)``."""
    ret: int = _ioctl(fd, request, arg)
    if ret < 0:
        raise KvmError(op, _get_errno())
    return ret


class _Fd:
    """An owned file descriptor with idempotent close and context-manager support."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Kvm(_Fd):
    """The system fd of /dev/kvm: API version, capabilities, supported CPUID, VM creation."""

    def __init__(self, path: str = "/dev/kvm") -> None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as e:
            raise KvmError(f"open {path}", e.errno or 0) from None
        super().__init__(fd)
        version = _call("KVM_GET_API_VERSION", fd, S.KVM_GET_API_VERSION)
        if version != S.KVM_API_VERSION:
            self.close()
            raise KvmError("KVM_GET_API_VERSION", 0, f"unsupported API version {version}")
        self.vcpu_mmap_size = _call("KVM_GET_VCPU_MMAP_SIZE", fd, S.KVM_GET_VCPU_MMAP_SIZE)

    def check_extension(self, cap: int) -> int:
        """KVM_CHECK_EXTENSION: 0 when absent, else a capability-specific positive value."""
        return _call("KVM_CHECK_EXTENSION", self.fd, S.KVM_CHECK_EXTENSION, cap)

    def supported_cpuid(self) -> S.KvmCpuid2:
        """KVM_GET_SUPPORTED_CPUID: every leaf this host can offer a guest."""
        cpuid = S.KvmCpuid2(nent=S.CPUID_MAX_ENTRIES)
        _call("KVM_GET_SUPPORTED_CPUID", self.fd, S.KVM_GET_SUPPORTED_CPUID, ctypes.byref(cpuid))
        return cpuid

    def create_vm(self) -> Vm:
        """KVM_CREATE_VM (machine type 0)."""
        return Vm(self, _call("KVM_CREATE_VM", self.fd, S.KVM_CREATE_VM, 0))


class Vm(_Fd):
    """A VM fd: memory slots, the TSS / identity-map pages VMX needs, vCPU creation."""

    # Where QEMU puts the 3-page TSS and the identity-map page that VMX needs for real mode
    # (KVM_SET_TSS_ADDR / KVM_SET_IDENTITY_MAP_ADDR docs): just below the top-of-4-GiB BIOS.
    TSS_ADDR = 0xFFFB_D000
    IDENTITY_MAP_ADDR = 0xFFFB_C000

    def __init__(self, kvm: Kvm, fd: int) -> None:
        super().__init__(fd)
        self.kvm = kvm
        _call("KVM_SET_TSS_ADDR", fd, S.KVM_SET_TSS_ADDR, self.TSS_ADDR)
        addr = ctypes.c_uint64(self.IDENTITY_MAP_ADDR)
        _call("KVM_SET_IDENTITY_MAP_ADDR", fd, S.KVM_SET_IDENTITY_MAP_ADDR, ctypes.byref(addr))

    def set_memory(
        self, slot: int, gpa: int, size: int, host_addr: int, *, readonly: bool = False
    ) -> None:
        """KVM_SET_USER_MEMORY_REGION: back ``[gpa, gpa+size)`` with host memory at host_addr."""
        flags = S.KVM_MEM_READONLY if readonly else 0
        region = S.KvmUserspaceMemoryRegion(slot, flags, gpa, size, host_addr)
        _call("KVM_SET_USER_MEMORY_REGION", self.fd, S.KVM_SET_USER_MEMORY_REGION,
              ctypes.byref(region))  # fmt: skip

    def create_vcpu(self, index: int) -> Vcpu:
        """KVM_CREATE_VCPU with vCPU id ``index`` and map its ``kvm_run`` area."""
        return Vcpu(self, index, _call("KVM_CREATE_VCPU", self.fd, S.KVM_CREATE_VCPU, index))


class Vcpu(_Fd):
    """A vCPU fd and its shared ``kvm_run`` page; ``run()`` enters the guest until an exit."""

    def __init__(self, vm: Vm, index: int, fd: int) -> None:
        super().__init__(fd)
        self.vm = vm
        self.index = index
        try:
            self.run_map = mmap.mmap(fd, vm.kvm.vcpu_mmap_size, mmap.MAP_SHARED,
                                     mmap.PROT_READ | mmap.PROT_WRITE)  # fmt: skip
        except OSError as e:
            self.close()
            raise KvmError("mmap kvm_run", e.errno or 0) from None
        self.kvm_run = S.KvmRun.from_buffer(self.run_map)  # a view, not a copy
        # KVM_CAP_SYNC_REGS: KVM copies registers into kvm_run on every exit, saving the
        # KVM_GET_REGS / KVM_GET_SREGS ioctls (each a vcpu_load; ~9 us under nested KVM).
        wanted = S.KVM_SYNC_X86_REGS | S.KVM_SYNC_X86_SREGS
        self.synced = vm.kvm.check_extension(S.KVM_CAP_SYNC_REGS) & wanted == wanted
        self.sync_bits = wanted if self.synced else 0
        # kvm_run.kvm_valid_regs: what KVM stores on the next exits (the C fast path turns it
        # off while no hooked port sees traffic; see fastpath.c)
        self._valid = ctypes.c_uint64.from_buffer(self.run_map, S.RUN_VALID_REGS_OFFSET)
        self._valid.value = self.sync_bits
        self._regs = S.KvmRegs.from_buffer(self.run_map, S.RUN_SYNC_REGS_OFFSET)
        self._sregs = S.KvmSregs.from_buffer(self.run_map, S.RUN_SYNC_SREGS_OFFSET)

    def close(self) -> None:
        if not self.closed:
            # drop the exports so the map can close
            del self.kvm_run, self._regs, self._sregs, self._valid
            # a caller still holding a view of kvm_run leaves the unmapping to the GC
            with contextlib.suppress(BufferError):
                self.run_map.close()
        super().close()

    # -- registers ---------------------------------------------------------------------------

    @property
    def regs_synced(self) -> bool:
        """True if the last exit left the registers in kvm_run's sync area."""
        return self.synced and self._valid.value == self.sync_bits

    def exit_regs(self) -> S.KvmRegs:
        """The registers at the last exit: a view of kvm_run's sync area (valid until the next
        KVM_RUN), or a KVM_GET_REGS copy where sync regs are unsupported."""
        return self._regs if self.regs_synced else self.get_regs()

    def exit_sregs(self) -> S.KvmSregs:
        """Like :meth:`exit_regs` for the segment and control registers."""
        return self._sregs if self.regs_synced else self.get_sregs()

    def get_regs(self) -> S.KvmRegs:
        regs = S.KvmRegs()
        _call("KVM_GET_REGS", self.fd, S.KVM_GET_REGS, ctypes.byref(regs))
        return regs

    def set_regs(self, regs: S.KvmRegs) -> None:
        _call("KVM_SET_REGS", self.fd, S.KVM_SET_REGS, ctypes.byref(regs))

    def get_sregs(self) -> S.KvmSregs:
        sregs = S.KvmSregs()
        _call("KVM_GET_SREGS", self.fd, S.KVM_GET_SREGS, ctypes.byref(sregs))
        return sregs

    def set_sregs(self, sregs: S.KvmSregs) -> None:
        _call("KVM_SET_SREGS", self.fd, S.KVM_SET_SREGS, ctypes.byref(sregs))

    def set_cpuid(self, cpuid: S.KvmCpuid2) -> None:
        _call("KVM_SET_CPUID2", self.fd, S.KVM_SET_CPUID2, ctypes.byref(cpuid))

    def translate(self, linear: int) -> int | None:
        """KVM_TRANSLATE: the guest-physical address of ``linear`` under the guest's paging."""
        tr = S.KvmTranslation(linear_address=linear)
        _call("KVM_TRANSLATE", self.fd, S.KVM_TRANSLATE, ctypes.byref(tr))
        return tr.physical_address if tr.valid else None

    def interrupt(self, vector: int) -> None:
        """KVM_INTERRUPT: queue an external interrupt (userspace irqchip only)."""
        irq = S.KvmInterrupt(vector)
        _call("KVM_INTERRUPT", self.fd, S.KVM_INTERRUPT, ctypes.byref(irq))

    # -- running -----------------------------------------------------------------------------

    @property
    def immediate_exit(self) -> bool:
        return bool(self.kvm_run.immediate_exit)

    @immediate_exit.setter
    def immediate_exit(self, value: bool) -> None:
        self.kvm_run.immediate_exit = int(value)

    def run_raw(self) -> int:
        """KVM_RUN, returning the raw exit reason (``EXIT_INTR`` on EINTR) — the hot path."""
        if S.run_ioctl(self.fd, S.KVM_RUN, 0) < 0:  # the one KVM_RUN issued from Python
            err = _get_errno()
            if err in (errno.EINTR, errno.EAGAIN):
                return S.EXIT_INTR
            raise KvmError("KVM_RUN", err)
        reason: int = self.kvm_run.exit_reason
        return reason

    def run(self) -> Exit:
        """KVM_RUN until the next exit, decoded."""
        return self.decode(self.run_raw())

    def decode(self, reason: int) -> Exit:
        """The exit ``reason`` (from :meth:`run_raw`) as a dataclass, fields read from kvm_run."""
        ex = self.kvm_run.exit
        match reason:
            case S.EXIT_IO:
                io = ex.io
                cls = IoIn if io.direction == S.EXIT_IO_IN else IoOut
                return cls(io.port, io.size, io.count, io.data_offset)
            case S.EXIT_MMIO:
                m = ex.mmio
                data = bytes(m.data[: m.len]) if m.is_write else bytes(m.len)
                return Mmio(m.phys_addr, m.len, bool(m.is_write), data)
            case S.EXIT_HLT:
                return Hlt()
            case S.EXIT_SHUTDOWN:
                return Shutdown()
            case S.EXIT_INTR:
                return Intr()
            case S.EXIT_FAIL_ENTRY:
                fe = ex.fail_entry
                return FailEntry(fe.hardware_entry_failure_reason, fe.cpu)
            case S.EXIT_INTERNAL_ERROR:
                ie = ex.internal
                return InternalError(ie.suberror, tuple(ie.data[: min(ie.ndata, 16)]))
            case S.EXIT_IRQ_WINDOW_OPEN:
                return IrqWindowOpen()
            case S.EXIT_SYSTEM_EVENT:
                se = ex.system_event
                return SystemEvent(se.type, tuple(se.data[: min(se.ndata, 16)]))
            case _:
                return Unknown(reason, ex.hardware_exit_reason)

    def io_bytes(self, data_offset: int, length: int) -> bytes:
        """The port-I/O data area (``length`` = size * count bytes)."""
        return self.run_map[data_offset : data_offset + length]

    def set_io_bytes(self, data_offset: int, data: bytes) -> None:
        """Fill the port-I/O data area: what an IN reads when the guest resumes."""
        self.run_map[data_offset : data_offset + len(data)] = data

    def complete_mmio_read(self, data: bytes) -> None:
        """Fill ``kvm_run.mmio.data``: what an MMIO read returns when the guest resumes."""
        ctypes.memmove(self.kvm_run.exit.mmio.data, data, min(len(data), 8))
