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


class ScriptMemory:
    """Guest memory by linear address, through the guest's page tables at this exit."""

    def __init__(self, ctx: VcpuContext, acc: Access) -> None:
        self._ctx = ctx
        self._acc = acc

    def _physical(self, address: int, size: int) -> int:
        phys = physical(self._ctx.vcpu, self._acc, address)
        last = physical(self._ctx.vcpu, self._acc, address + max(size, 1) - 1)
        if phys is None or last is None or last - phys != max(size, 1) - 1:
            raise ScriptAbort(f"guest address {address:#x} is not mapped ({size} bytes)")
        return phys

    def read(self, address: int, size: int) -> bytes:
        size = min(size, self._readable(address, size))
        try:
            return self._ctx.memory.read(self._physical(address, size), size)
        except KvmError as e:
            raise ScriptAbort(f"guest address {address:#x}: {e}") from None

    def _readable(self, address: int, size: int) -> int:
        """Strings are read up to 4 KiB: stop at the end of the page rather than fault."""
        return max(1, min(size, 0x1000 - (address & 0xFFF))) if size > 8 else size

    def write(self, address: int, data: bytes) -> None:
        try:
            self._ctx.memory.write(self._physical(address, len(data)), data)
        except KvmError as e:
            raise ScriptAbort(f"guest address {address:#x}: {e}") from None


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
