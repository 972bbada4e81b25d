"""``condition { }`` and ``script { }`` on the kvm backend, with the vCPU's real registers.

Scripts run on the Python hook path (a hook with a script is never ``Plan.simple``), once per
stage, with a copy of the registers at the exit plus what earlier scripts of the same exit
changed. Their meaning is :mod:`agent.script.hit`'s; what is particular to kvm is here:

- guest memory (``poi``, ``db``, ``eb``, ``memcpy``, ...) goes through the guest's page tables
  (:class:`ScriptMemory`); an unmapped address aborts the run;
- registers a script changed are written to the vCPU when the exit is done
  (:func:`write_registers`): KVM first completes the pending I/O (``immediate_exit``, as a skip
  does), so an IN's value lands in RAX and RIP moves past the instruction, then the registers are
  set — a script's ``@rbx = 1`` is what the guest sees next.
"""

from __future__ import annotations

from agent.backends.kvm import _sys as S
from agent.backends.kvm.context import VcpuContext
from agent.backends.kvm.insns import Access, physical
from agent.errors import KvmError
from agent.script import ScriptAbort

__all__ = ["ScriptMemory", "complete_exit", "write_registers"]


PAGE = 0x1000


class ScriptMemory:
    """Guest memory by linear address, through the guest's page tables at this exit.

    Each page of a range is translated on its own: a value or a string that crosses a page
    boundary is read from wherever the two pages are mapped, not from the physical bytes that
    follow the first page.
    """

    def __init__(self, ctx: VcpuContext, acc: Access) -> None:
        self._ctx = ctx
        self._acc = acc

    def read(self, address: int, size: int) -> bytes:
        """``size`` bytes; more than 8 is a string (printf's ``%s``): read up to ``size``, until
        the first page after the first one that is unmapped or past the guest's memory."""
        partial = size > 8
        data = bytearray()
        for phys, length in self._pages(address, size, partial=partial):
            try:
                data += self._ctx.memory.read(phys, length)
            except KvmError as e:  # past the guest's memory
                if partial and data:
                    break
                raise ScriptAbort(f"guest address {address:#x}: {e}") from None
        return bytes(data)

    def write(self, address: int, data: bytes) -> None:
        done = 0
        try:
            for phys, length in self._pages(address, len(data), partial=False):
                self._ctx.memory.write(phys, data[done : done + length])
                done += length
        except KvmError as e:
            raise ScriptAbort(f"guest address {address:#x}: {e}") from None

    def _pages(self, address: int, size: int, *, partial: bool) -> list[tuple[int, int]]:
        """(physical address, length) of each page the range touches. An unmapped page aborts
        the run, unless ``partial`` and it is not the first: the range then stops before it."""
        pieces: list[tuple[int, int]] = []
        at, left = address, max(size, 1)
        while left:
            length = min(left, PAGE - (at & (PAGE - 1)))
            phys = physical(self._ctx.vcpu, self._acc, at)
            if phys is None:
                if partial and pieces:
                    break
                raise ScriptAbort(f"guest address {at:#x} is not mapped (at {address:#x})")
            pieces.append((phys, length))
            at, left = (at + length) & (2**64 - 1), left - length
        return pieces


def complete_exit(ctx: VcpuContext) -> None:
    """Let KVM finish the pending I/O exit without running guest code (RIP moves on)."""
    vcpu = ctx.vcpu
    vcpu.kvm_run.immediate_exit = 1
    vcpu.run_raw()  # completes the pending I/O, returns EINTR before guest code
    # a kick that arrived meanwhile lost its immediate_exit: re-arm it so the loop sees it
    vcpu.kvm_run.immediate_exit = 0 if ctx.commands.empty() else 1


def write_registers(ctx: VcpuContext, changed: dict[str, int], *, completed: bool) -> None:
    """Set the registers scripts changed (full registers from ``struct kvm_regs`` only)."""
    names = [name for name in changed if name in S.REG_NAMES]
    if not names:
        return
    if not completed:
        complete_exit(ctx)
    regs = ctx.vcpu.get_regs()
    for name in names:
        setattr(regs, name, changed[name])
    ctx.vcpu.set_regs(regs)
