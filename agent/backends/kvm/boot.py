"""Guest setup: memory layout, flat images, firmware, CPU mode (real / protected / long), CPUID.

Layouts (guest-physical):

- **flat image**: RAM ``[0, mem)`` in one slot; the image copied to ``load_addr``; the vCPUs start
  at ``entry`` in the requested mode. The last 64 KiB of RAM (``SYSTEM_AREA``) hold what the VMM
  builds: the GDT at its start, identity page tables after it; the initial stack pointer is just
  below it (protected and long mode) or ``SS:SP = 0:load_addr`` (real mode, stack below the image).
- **firmware** (SeaBIOS): RAM ``[0, 0xE0000)`` and ``[1 MiB, mem)``; the image ends at 4 GiB
  (read-only: the reset vector F000:FFF0 is its last 16 bytes) and its last 128 KiB are also
  mapped at ``0xE0000-0xFFFFF`` (writable), as a PC chipset does at reset; vCPUs keep KVM's reset
  state (CS=F000 base FFFF0000, IP=FFF0).

Every vCPU starts with RDI = its index (a boot convention of this VMM, so one image can branch per
vCPU) and CPUID reporting that index as its initial APIC id; callers may give per-vCPU entries.
"""

from __future__ import annotations

import struct
from pathlib import Path

from agent.backends.kvm import _sys as S
from agent.backends.kvm._kvm import Kvm, Vcpu
from agent.backends.kvm.memory import GuestMemory
from agent.errors import ConfigError

__all__ = ["Layout", "cpuid_for", "load_firmware", "load_flat", "setup_vcpu"]

SYSTEM_AREA = 0x10000  # bytes at the top of RAM reserved for GDT + page tables
FW_ALIAS_LOW = 0xE0000  # PC BIOS area 0xE0000-0xFFFFF (the top 128 KiB of the firmware)
FW_ALIAS_SIZE = 0x20000
FOUR_GIB = 1 << 32

# CR0 / CR4 / EFER bits (SDM vol. 3, 2.5 and 2.2.1)
CR0_PE, CR0_ET, CR0_NE, CR0_PG = 1 << 0, 1 << 4, 1 << 5, 1 << 31
CR4_PAE = 1 << 5
EFER_LME, EFER_LMA = 1 << 8, 1 << 10
# Page-table entry bits (SDM vol. 3, 4.5): present, writable, page size (2 MiB in a PD)
PTE_P, PTE_W, PTE_PS = 1 << 0, 1 << 1, 1 << 7
# CPUID.1 (SDM vol. 2A, CPUID): EDX.APIC[9], ECX.X2APIC[21]; EBX[31:24] initial APIC id
CPUID_APIC, CPUID_X2APIC = 1 << 9, 1 << 21


class Layout:
    """Where the VMM put things: RAM size, system area, stack top."""

    def __init__(self, mem: int) -> None:
        self.mem = mem
        self.system = mem - SYSTEM_AREA
        self.gdt = self.system
        self.pml4 = self.system + 0x1000  # PML4, PDPT, then 4 PDs (identity map of 4 GiB)
        self.stack_top = self.system


def _ram(memory: GuestMemory, mem: int, *, hole: bool) -> None:
    ram = memory.allocate(mem)
    if hole:  # leave 0xE0000-0xFFFFF to the firmware alias
        memory.map(0, ram, 0, FW_ALIAS_LOW)
        if mem > 0x100000:
            memory.map(0x100000, ram, 0x100000, mem - 0x100000)
    else:
        memory.map(0, ram)


def load_flat(memory: GuestMemory, image: bytes, load_addr: int, mem: int) -> Layout:
    """RAM of ``mem`` bytes with ``image`` at ``load_addr``; GDT and page tables built."""
    layout = Layout(mem)
    if mem < 0x100000 or load_addr + len(image) > layout.system:
        raise ConfigError(f"image: {len(image)} bytes at {load_addr:#x} do not fit in RAM")
    _ram(memory, mem, hole=False)
    memory.write(load_addr, image)
    memory.write(layout.gdt, _gdt())
    memory.write(layout.pml4, _page_tables(layout.pml4))
    return layout


def load_firmware(memory: GuestMemory, path: str, mem: int) -> Layout:
    """RAM with a hole at 0xE0000, firmware ending at 4 GiB and aliased below 1 MiB."""
    try:
        image = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"bios: cannot read {path}: {e.strerror}") from None
    if len(image) < FW_ALIAS_SIZE or len(image) % 0x1000:
        raise ConfigError(f"bios: {path} must be a multiple of 4 KiB and at least 128 KiB")
    _ram(memory, mem, hole=True)
    fw = memory.allocate(len(image))
    fw[:] = image
    memory.map(FOUR_GIB - len(image), fw, readonly=True)
    memory.map(FW_ALIAS_LOW, fw, len(image) - FW_ALIAS_SIZE, FW_ALIAS_SIZE)
    return Layout(mem)


def _gdt() -> bytes:
    """Null, 0x08 code32, 0x10 data, 0x18 code64 (SDM vol. 3, 3.4.5 segment descriptors)."""

    def desc(access: int, flags: int) -> int:  # base 0, limit 0xFFFFF (4 GiB with G=1)
        return 0xFFFF | (access << 40) | (0xF << 48) | (flags << 52)

    return struct.pack("<4Q", 0, desc(0x9B, 0xC), desc(0x93, 0xC), desc(0x9B, 0xA))


def _page_tables(pml4: int) -> bytes:
    """PML4 → PDPT → 4 PDs of 2 MiB pages: identity map of the first 4 GiB."""
    pdpt, pd0 = pml4 + 0x1000, pml4 + 0x2000
    out = struct.pack("<Q", pdpt | PTE_P | PTE_W).ljust(0x1000, b"\0")
    out += struct.pack("<4Q", *((pd0 + i * 0x1000) | PTE_P | PTE_W for i in range(4)))
    out = out.ljust(0x2000, b"\0")
    out += struct.pack("<2048Q", *((i << 21) | PTE_P | PTE_W | PTE_PS for i in range(2048)))
    return out


def _segment(seg: S.KvmSegment, selector: int, *, code: bool, long: bool = False) -> None:
    seg.base, seg.limit, seg.selector = 0, 0xFFFFFFFF, selector
    seg.type = 0xB if code else 0x3  # execute/read accessed, read/write accessed
    seg.present, seg.dpl, seg.s, seg.g, seg.avl, seg.unusable = 1, 0, 1, 1, 0, 0
    seg.l, seg.db = (1, 0) if long else (0, 1)


def setup_vcpu(vcpu: Vcpu, mode: str, entry: int, layout: Layout, load_addr: int) -> None:
    """Registers and segments so the vCPU starts at ``entry`` in ``mode``."""
    sregs = vcpu.get_sregs()
    regs = S.KvmRegs(rflags=0x2, rip=entry, rdi=vcpu.index)  # RFLAGS bit 1 is reserved-1
    if mode == "real":
        cs = (entry >> 4) & 0xF000 if entry >= 0x10000 else 0
        for name in ("cs", "ds", "es", "fs", "gs", "ss"):
            seg = getattr(sregs, name)
            seg.base, seg.selector = 0, 0
        sregs.cs.selector, sregs.cs.base = cs, cs << 4
        regs.rip, regs.rsp = entry - (cs << 4), min(load_addr, 0xFFFE)
    else:
        long = mode == "long"
        sregs.gdt.base, sregs.gdt.limit = layout.gdt, 4 * 8 - 1
        _segment(sregs.cs, 0x18 if long else 0x08, code=True, long=long)
        for name in ("ds", "es", "fs", "gs", "ss"):
            _segment(getattr(sregs, name), 0x10, code=False)
        sregs.cr0 = CR0_PE | CR0_ET | CR0_NE
        if long:
            sregs.cr3, sregs.cr4 = layout.pml4, CR4_PAE
            sregs.cr0 |= CR0_PG
            sregs.efer = EFER_LME | EFER_LMA
        regs.rsp = layout.stack_top
    vcpu.set_sregs(sregs)
    vcpu.set_regs(regs)


def cpuid_for(kvm: Kvm, index: int) -> S.KvmCpuid2:
    """The host's supported CPUID with no local APIC (there is none) and APIC id = index."""
    cpuid = kvm.supported_cpuid()
    for i in range(cpuid.nent):
        e = cpuid.entries[i]
        if e.function == 1:
            e.edx &= ~CPUID_APIC
            e.ecx &= ~CPUID_X2APIC
            e.ebx = (e.ebx & 0x00FFFFFF) | (index << 24)
        elif e.function == 0xB:  # x2APIC topology leaf: EDX is the x2APIC id
            e.edx = index
    return cpuid
