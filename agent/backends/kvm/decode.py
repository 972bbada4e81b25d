"""Decoding the port-I/O instruction behind an exit: where it starts, how long it is, whether it
is a string instruction (INS/OUTS) and REP-prefixed.

KVM's ``kvm_run.io`` says port, size and count but not which instruction, and the guest RIP at
the exit is not always the instruction's: IN and string I/O exit with RIP *at* the instruction,
a plain OUT (KVM's "fast PIO" path) may exit with RIP already *past* it — kernels differ, so
:func:`out_rip_advances` measures it once per process with a tiny guest. Opcodes: SDM vol. 2,
IN (E4, E5, EC, ED), OUT (E6, E7, EE, EF), INS (6C, 6D), OUTS (6E, 6F); prefixes: SDM vol. 2, 2.1.1.
"""

from __future__ import annotations

import functools
import mmap
from dataclasses import dataclass

__all__ = ["Insn", "decode_at", "decode_out_before", "out_rip_advances"]

IN_OPS = {0xE4: True, 0xE5: True, 0xEC: False, 0xED: False}  # opcode -> has imm8 port
OUT_OPS = {0xE6: True, 0xE7: True, 0xEE: False, 0xEF: False}
INS_OPS, OUTS_OPS = (0x6C, 0x6D), (0x6E, 0x6F)
PREFIXES = frozenset((0x66, 0x67, 0xF0, 0xF2, 0xF3, 0x2E, 0x36, 0x3E, 0x26, 0x64, 0x65))
REP_PREFIXES = (0xF2, 0xF3)
MAX_INSN = 15  # SDM vol. 2, 2.3.11: instructions are at most 15 bytes


@dataclass(frozen=True, slots=True)
class Insn:
    """A decoded I/O instruction at guest-linear ``start``."""

    start: int
    length: int
    string: bool
    rep: bool


def decode_at(code: bytes, start: int, is_in: bool, long_mode: bool) -> Insn | None:
    """Decode ``code`` (bytes at linear ``start``) as an IN/INS (``is_in``) or OUT/OUTS."""
    i, rep = 0, False
    while i < min(len(code), MAX_INSN) and (
        code[i] in PREFIXES or (long_mode and 0x40 <= code[i] <= 0x4F)
    ):
        rep = rep or code[i] in REP_PREFIXES
        i += 1
    if i >= len(code):
        return None
    op = code[i]
    plain, strings = (IN_OPS, INS_OPS) if is_in else (OUT_OPS, OUTS_OPS)
    if op in plain:
        return Insn(start, i + 1 + plain[op], False, False)
    if op in strings:
        return Insn(start, i + 1, True, rep)
    return None


def decode_out_before(code: bytes, end: int, port: int, dx: int) -> Insn | None:
    """A plain OUT that ends at linear ``end`` (``code`` = the bytes before it), if one does."""
    if len(code) >= 1 and code[-1] in (0xEE, 0xEF) and dx & 0xFFFF == port:
        n = 2 if len(code) >= 2 and code[-2] == 0x66 and code[-1] == 0xEF else 1
        return Insn(end - n, n, False, False)
    if len(code) >= 2 and code[-2] in (0xE6, 0xE7) and code[-1] == port:
        n = 3 if len(code) >= 3 and code[-3] == 0x66 and code[-2] == 0xE7 else 2
        return Insn(end - n, n, False, False)
    return None


@functools.cache
def out_rip_advances() -> bool:
    """Does this kernel exit a plain ``OUT`` with RIP already past it? (Measured once.)"""
    from agent.backends.kvm._kvm import Kvm

    with Kvm() as kvm, kvm.create_vm() as vm:
        mem = mmap.mmap(-1, 0x10000)
        try:
            mem[0x1000:0x1002] = b"\xee\xf4"  # out dx, al ; hlt
            import ctypes

            vm.set_memory(0, 0, len(mem), ctypes.addressof(ctypes.c_char.from_buffer(mem)))
            with vm.create_vcpu(0) as vcpu:
                sregs = vcpu.get_sregs()
                sregs.cs.base = sregs.cs.selector = 0
                vcpu.set_sregs(sregs)
                regs = vcpu.get_regs()
                regs.rip, regs.rflags, regs.rdx = 0x1000, 2, 0x80
                vcpu.set_regs(regs)
                vcpu.run()
                rip: int = vcpu.get_regs().rip
        finally:
            vm.close()
            mem.close()
    return rip != 0x1000
