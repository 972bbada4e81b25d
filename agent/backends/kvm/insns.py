"""The instruction behind a port-I/O exit: decoded from guest memory, cached per VM.

:class:`Access` is what one hooked exit is about (registers, mode, port); :class:`InsnCache`
decodes the IN/OUT at its RIP once and keeps it with the bytes it came from, checked on every use
so self-modifying code is seen. One cache serves all vCPUs of a VM (the C loop's per-vCPU slots
are filled from it, see :meth:`~.fast.FastPath.install`).
"""

from __future__ import annotations

import mmap

from agent.backends.kvm._kvm import Vcpu
from agent.backends.kvm.decode import Insn, decode_at, decode_out_before, out_rip_advances
from agent.backends.kvm.memory import GuestMemory
from agent.errors import KvmError

__all__ = ["CR0_PG", "EFER_LMA", "INSN_CACHE_MAX", "Access", "InsnCache", "InsnKey", "Mode"]

CR0_PG = 1 << 31  # SDM vol. 3, 2.5
EFER_LMA = 1 << 10
INSN_CACHE_MAX = 4096  # decoded instructions kept per VM (cleared when full)
RIP, RDX = 16, 3  # indexes in S.REG_NAMES
Mode = tuple[int, ...]  # (cs.base, cs.l, cr0, cr3, efer)
InsnKey = tuple[int, Mode, int]  # (rip, mode, port | is_in << 16 | (dx == port) << 17)


class Access:
    """What one hooked exit is about, shared by its events (the general path's view)."""

    __slots__ = (
        "count", "cr3", "cs_base", "is_in", "long", "paging", "port", "regs", "regs_map", "size",
        "ts",
    )  # fmt: skip

    def __init__(self, ts: int, regs: tuple[int, ...], regs_map: dict[str, int], mode: Mode,
                 is_in: bool, size: int, port: int, count: int) -> None:  # fmt: skip
        cs_base, cs_l, cr0, cr3, efer = mode
        self.ts, self.regs, self.regs_map = ts, regs, regs_map
        self.long = bool(efer & EFER_LMA and cs_l)
        self.paging = bool(cr0 & CR0_PG)
        self.cs_base = 0 if self.long else cs_base
        self.cr3 = cr3 if self.paging else -1
        self.is_in, self.size, self.port, self.count = is_in, size, port, count


def physical(vcpu: Vcpu, acc: Access, linear: int) -> int | None:
    """The guest-physical address of ``linear`` (None if unmapped)."""
    return vcpu.translate(linear) if acc.paging else linear & 0xFFFF_FFFF


def read_linear(vcpu: Vcpu, memory: GuestMemory, acc: Access, linear: int, n: int) -> bytes:
    phys = physical(vcpu, acc, linear)
    if phys is None:
        return b""
    try:
        return memory.read(phys, n)
    except KvmError:
        return b""


def write_linear(vcpu: Vcpu, memory: GuestMemory, acc: Access, linear: int, data: bytes) -> None:
    phys = physical(vcpu, acc, linear)
    if phys is not None:
        memory.write(phys, data)


class InsnCache:
    """Decoded instructions of one VM by :data:`InsnKey`, with the bytes they came from."""

    def __init__(self, memory: GuestMemory) -> None:
        self.memory = memory
        self._insns: dict[InsnKey, tuple[mmap.mmap, int, bytes, Insn, int]] = {}

    def cached(self, key: InsnKey) -> Insn | None:
        """The instruction decoded at ``key`` if the guest's bytes there are unchanged."""
        hit = self._insns.get(key)
        if hit is None:
            return None
        mapping, off, code, insn, _ = hit
        return insn if mapping[off : off + len(code)] == code else None

    def code(self, key: InsnKey) -> tuple[Insn, int, bytes] | None:
        """(instruction, host address of its bytes, the bytes) cached under ``key``."""
        hit = self._insns.get(key)
        return None if hit is None else (hit[3], hit[4], hit[2])

    def decode(self, vcpu: Vcpu, acc: Access, key: InsnKey) -> Insn:
        """Decode the instruction behind the exit and cache it under ``key``. Assumes code does
        not move to another physical page under an unchanged CR3 (the guest would need a TLB
        flush: rare enough)."""
        linear, code, insn = self._decode(vcpu, acc)
        if insn is None:
            return Insn(acc.regs[RIP], 0, acc.count > 1, False)
        phys = physical(vcpu, acc, linear)
        found = None if phys is None else self.memory.find(phys)
        if found is not None and found[1] + len(code) <= found[0].offset + found[0].size:
            if len(self._insns) >= INSN_CACHE_MAX:
                self._insns.clear()
            region, off = found
            host = region.host + off - region.offset if region.host else 0
            self._insns[key] = (region.mapping, off, code, insn, host)
        return insn

    def _decode(self, vcpu: Vcpu, acc: Access) -> tuple[int, bytes, Insn | None]:
        """From guest memory: (linear address of the bytes used, the bytes, insn)."""
        rip, cs = acc.regs[RIP], acc.cs_base
        if not acc.is_in and out_rip_advances():
            before = read_linear(vcpu, self.memory, acc, cs + rip - 3, 3)
            out = decode_out_before(before, rip, acc.port, acc.regs[RDX])
            if out is not None:
                return cs + rip - 3, before, out
        code = read_linear(vcpu, self.memory, acc, cs + rip, 15)
        insn = decode_at(code, rip, acc.is_in, acc.long)
        return cs + rip, code[: insn.length if insn else 0], insn
