"""ioctl numbers and ctypes structs of the KVM API, transcribed from the uapi headers.

Sources: ``linux/kvm.h`` (generic API) and ``asm/kvm.h`` for x86 (registers, segments, CPUID),
``asm-generic/ioctl.h`` (the ``_IOC`` encoding). Every layout below says where it comes from;
nothing else in the backend knows a raw number.
"""

from __future__ import annotations

import ctypes
from ctypes import Structure, c_uint8, c_uint16, c_uint32, c_uint64, sizeof

# -- ioctl encoding (asm-generic/ioctl.h: dir:2 | size:14 | type:8 | nr:8) --------------------
_IOC_WRITE, _IOC_READ = 1, 2
KVMIO = 0xAE  # linux/kvm.h: #define KVMIO 0xAE


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (KVMIO << 8) | nr


def _io(nr: int) -> int:
    return _ioc(0, nr, 0)


# -- structs -----------------------------------------------------------------------------------


REG_NAMES = (
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags",
)  # fmt: skip


class KvmRegs(Structure):
    """asm/kvm.h ``struct kvm_regs`` (18 x u64, 144 bytes)."""

    _fields_ = [(name, c_uint64) for name in REG_NAMES]


class KvmSegment(Structure):
    """asm/kvm.h ``struct kvm_segment`` (24 bytes)."""

    _fields_ = [
        ("base", c_uint64),
        ("limit", c_uint32),
        ("selector", c_uint16),
        ("type", c_uint8),
        ("present", c_uint8),
        ("dpl", c_uint8),
        ("db", c_uint8),
        ("s", c_uint8),
        ("l", c_uint8),
        ("g", c_uint8),
        ("avl", c_uint8),
        ("unusable", c_uint8),
        ("padding", c_uint8),
    ]


class KvmDtable(Structure):
    """asm/kvm.h ``struct kvm_dtable`` (GDTR / IDTR, 16 bytes)."""

    _fields_ = [("base", c_uint64), ("limit", c_uint16), ("padding", c_uint16 * 3)]


class KvmSregs(Structure):
    """asm/kvm.h ``struct kvm_sregs`` (312 bytes; interrupt_bitmap: KVM_NR_INTERRUPTS bits)."""

    _fields_ = [
        *[(seg, KvmSegment) for seg in ("cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt")],
        ("gdt", KvmDtable),
        ("idt", KvmDtable),
        *[(cr, c_uint64) for cr in ("cr0", "cr2", "cr3", "cr4", "cr8", "efer", "apic_base")],
        ("interrupt_bitmap", c_uint64 * 4),
    ]


class KvmUserspaceMemoryRegion(Structure):
    """linux/kvm.h ``struct kvm_userspace_memory_region`` (32 bytes)."""

    _fields_ = [
        ("slot", c_uint32),
        ("flags", c_uint32),
        ("guest_phys_addr", c_uint64),
        ("memory_size", c_uint64),
        ("userspace_addr", c_uint64),
    ]


class KvmCpuidEntry2(Structure):
    """asm/kvm.h ``struct kvm_cpuid_entry2`` (40 bytes)."""

    _fields_ = [
        *[(n, c_uint32) for n in ("function", "index", "flags", "eax", "ebx", "ecx", "edx")],
        ("padding", c_uint32 * 3),
    ]


CPUID_MAX_ENTRIES = 256  # plenty: current CPUs report ~60 leaves


class KvmCpuid2(Structure):
    """asm/kvm.h ``struct kvm_cpuid2`` with a fixed-size entries[] tail."""

    _fields_ = [
        ("nent", c_uint32),
        ("padding", c_uint32),
        ("entries", KvmCpuidEntry2 * CPUID_MAX_ENTRIES),
    ]


class KvmTranslation(Structure):
    """linux/kvm.h ``struct kvm_translation`` (KVM_TRANSLATE, 24 bytes)."""

    _fields_ = [
        ("linear_address", c_uint64),
        ("physical_address", c_uint64),
        ("valid", c_uint8),
        ("writeable", c_uint8),
        ("usermode", c_uint8),
        ("pad", c_uint8 * 5),
    ]


class KvmRunIo(Structure):
    """linux/kvm.h ``kvm_run.io`` (KVM_EXIT_IO)."""

    _fields_ = [
        ("direction", c_uint8),  # KVM_EXIT_IO_IN 0 / KVM_EXIT_IO_OUT 1
        ("size", c_uint8),  # bytes per element: 1, 2, 4
        ("port", c_uint16),
        ("count", c_uint32),  # elements (string I/O may carry several)
        ("data_offset", c_uint64),  # relative to the start of kvm_run
    ]


class KvmRunMmio(Structure):
    """linux/kvm.h ``kvm_run.mmio`` (KVM_EXIT_MMIO)."""

    _fields_ = [
        ("phys_addr", c_uint64),
        ("data", c_uint8 * 8),
        ("len", c_uint32),
        ("is_write", c_uint8),
    ]


class KvmRunFailEntry(Structure):
    """linux/kvm.h ``kvm_run.fail_entry`` (KVM_EXIT_FAIL_ENTRY)."""

    _fields_ = [("hardware_entry_failure_reason", c_uint64), ("cpu", c_uint32)]


class KvmRunInternal(Structure):
    """linux/kvm.h ``kvm_run.internal`` (KVM_EXIT_INTERNAL_ERROR)."""

    _fields_ = [("suberror", c_uint32), ("ndata", c_uint32), ("data", c_uint64 * 16)]


class KvmRunSystemEvent(Structure):
    """linux/kvm.h ``kvm_run.system_event`` (KVM_EXIT_SYSTEM_EVENT; ``data[0]`` is the old
    ``flags``)."""

    _fields_ = [("type", c_uint32), ("ndata", c_uint32), ("data", c_uint64 * 16)]


class KvmRunExit(ctypes.Union):
    """linux/kvm.h: the exit-information union of ``struct kvm_run`` (padded to 256 bytes)."""

    _fields_ = [
        ("hardware_exit_reason", c_uint64),  # KVM_EXIT_UNKNOWN
        ("fail_entry", KvmRunFailEntry),
        ("io", KvmRunIo),
        ("mmio", KvmRunMmio),
        ("internal", KvmRunInternal),
        ("system_event", KvmRunSystemEvent),
        ("padding", ctypes.c_char * 256),
    ]


class KvmRun(Structure):
    """linux/kvm.h ``struct kvm_run`` up to the exit union (sync regs follow, unused here)."""

    _fields_ = [
        ("request_interrupt_window", c_uint8),
        ("immediate_exit", c_uint8),
        ("padding1", c_uint8 * 6),
        ("exit_reason", c_uint32),  # offset 8
        ("ready_for_interrupt_injection", c_uint8),
        ("if_flag", c_uint8),
        ("flags", c_uint16),
        ("cr8", c_uint64),
        ("apic_base", c_uint64),
        ("exit", KvmRunExit),  # offset 32
    ]


class KvmInterrupt(Structure):
    """linux/kvm.h ``struct kvm_interrupt`` (KVM_INTERRUPT without an in-kernel irqchip)."""

    _fields_ = [("irq", c_uint32)]


RUN_EXIT_OFFSET = KvmRun.exit.offset  # 32: where the union starts inside kvm_run
# linux/kvm.h: after the 256-byte exit union come kvm_valid_regs, kvm_dirty_regs (u64 each),
# then union { struct kvm_sync_regs regs; ... } s — on x86 kvm_regs then kvm_sregs (asm/kvm.h).
RUN_VALID_REGS_OFFSET = RUN_EXIT_OFFSET + 256
RUN_SYNC_REGS_OFFSET = RUN_VALID_REGS_OFFSET + 16
RUN_SYNC_SREGS_OFFSET = RUN_SYNC_REGS_OFFSET + sizeof(KvmRegs)
assert sizeof(KvmRegs) == 144
assert sizeof(KvmSregs) == 312
assert RUN_EXIT_OFFSET == 32

# -- ioctls (linux/kvm.h) ----------------------------------------------------------------------
KVM_GET_API_VERSION = _io(0x00)
KVM_CREATE_VM = _io(0x01)
KVM_CHECK_EXTENSION = _io(0x03)
KVM_GET_VCPU_MMAP_SIZE = _io(0x04)
KVM_GET_SUPPORTED_CPUID = _ioc(_IOC_READ | _IOC_WRITE, 0x05, 8)  # sizeof header of kvm_cpuid2
KVM_CREATE_VCPU = _io(0x41)
KVM_SET_USER_MEMORY_REGION = _ioc(_IOC_WRITE, 0x46, sizeof(KvmUserspaceMemoryRegion))
KVM_SET_TSS_ADDR = _io(0x47)
KVM_SET_IDENTITY_MAP_ADDR = _ioc(_IOC_WRITE, 0x48, 8)
KVM_RUN = _io(0x80)
KVM_GET_REGS = _ioc(_IOC_READ, 0x81, sizeof(KvmRegs))
KVM_SET_REGS = _ioc(_IOC_WRITE, 0x82, sizeof(KvmRegs))
KVM_GET_SREGS = _ioc(_IOC_READ, 0x83, sizeof(KvmSregs))
KVM_SET_SREGS = _ioc(_IOC_WRITE, 0x84, sizeof(KvmSregs))
KVM_TRANSLATE = _ioc(_IOC_READ | _IOC_WRITE, 0x85, sizeof(KvmTranslation))
KVM_INTERRUPT = _ioc(_IOC_WRITE, 0x86, sizeof(KvmInterrupt))
KVM_SET_CPUID2 = _ioc(_IOC_WRITE, 0x90, 8)  # sizeof header of kvm_cpuid2

KVM_API_VERSION = 12  # linux/kvm.h: the only stable API version
KVM_CAP_READONLY_MEM = 81  # linux/kvm.h
KVM_CAP_IMMEDIATE_EXIT = 136  # linux/kvm.h
KVM_CAP_SYNC_REGS = 74  # linux/kvm.h: returns the KVM_SYNC_X86_* bits supported
KVM_SYNC_X86_REGS, KVM_SYNC_X86_SREGS = 1 << 0, 1 << 1  # asm/kvm.h
KVM_MEM_READONLY = 1 << 1  # linux/kvm.h: guest writes to the slot exit as KVM_EXIT_MMIO

# -- exit reasons (linux/kvm.h KVM_EXIT_*) -----------------------------------------------------
EXIT_UNKNOWN = 0
EXIT_EXCEPTION = 1
EXIT_IO = 2
EXIT_HLT = 5
EXIT_MMIO = 6
EXIT_IRQ_WINDOW_OPEN = 7
EXIT_SHUTDOWN = 8
EXIT_FAIL_ENTRY = 9
EXIT_INTR = 10
EXIT_INTERNAL_ERROR = 17
EXIT_SYSTEM_EVENT = 24
EXIT_IO_IN, EXIT_IO_OUT = 0, 1  # kvm_run.io.direction

# -- libc ---------------------------------------------------------------------------------------
libc = ctypes.CDLL(None, use_errno=True)
ioctl = libc.ioctl
ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
ioctl.restype = ctypes.c_int
# KVM_RUN (Vcpu.run_raw, in the vCPU loop): a second handle on ioctl without argtypes, which
# ctypes would apply on every call (~0.5 us a call here); KVM_RUN's request fits a C int and its
# argument is unused.
run_ioctl = libc["ioctl"]
run_ioctl.restype = ctypes.c_int
