"""The exits that are not port I/O, decoded and matched: HLT, MMIO, interrupt windows, faults.

Each handler works on a :class:`~.context.VcpuContext` and returns the vCPU's next state, or
None to keep running. Guest faults go to the VM's policy (``ctx.on_fault``), which announces
them and says whether the vCPU keeps running.
"""

from __future__ import annotations

import time

from agent.backends.kvm.commands import VcpuState
from agent.backends.kvm.context import VcpuContext
from agent.backends.kvm.exits import Hlt, IrqWindowOpen, Mmio, Shutdown

__all__ = ["FLOOD_WINDOW", "HLT_WAIT_SECONDS", "LAPIC_BASE", "fail", "flood_check", "other_exit"]

HLT_WAIT_SECONDS = 0.01  # HLT with interrupts on and no interrupt source: retry this often
FLOOD_WINDOW = 1 << 16  # exits between two flood checks
LAPIC_BASE = 0xFEE0_0000  # default local APIC page (SDM vol. 3, 11.4.1): reads 0, writes dropped


def other_exit(ctx: VcpuContext, reason: int) -> VcpuState | None:
    """Handle the exit ``reason`` (not port I/O) pending in kvm_run."""
    ctx.other_exits += 1
    match ctx.vcpu.decode(reason):
        case Hlt():
            return _halt(ctx)
        case IrqWindowOpen():
            ctx.inject()
            return None
        case Mmio(addr=addr, length=length, is_write=is_write):
            return _mmio(ctx, addr, length, is_write)
        case Shutdown():
            return fail(ctx, "triple-fault", "triple fault (KVM_EXIT_SHUTDOWN)")
        case exit_:
            return fail(ctx, "vm-exit", f"unexpected exit {exit_}")


def fail(ctx: VcpuContext, kind: str, detail: str) -> VcpuState:
    """A fault that ends the vCPU whatever the policy: announced, then FAILED."""
    ctx.reason = detail
    ctx.on_fault(ctx, kind, detail)
    return VcpuState.FAILED


def _halt(ctx: VcpuContext) -> VcpuState:
    if ctx.vcpu.kvm_run.if_flag:
        return VcpuState.WAITING  # an interrupt will wake it
    ctx.reason = "HLT with interrupts disabled"
    return VcpuState.HALTED


def _mmio(ctx: VcpuContext, addr: int, length: int, is_write: bool) -> VcpuState | None:
    found = ctx.memory.find(addr)
    if found is not None and found[0].readonly and is_write:
        return None  # a write to ROM: dropped, as on hardware
    if LAPIC_BASE <= addr < LAPIC_BASE + 0x1000:
        if not is_write:  # firmware pokes the local APIC even when CPUID denies one
            ctx.vcpu.complete_mmio_read(bytes(length))
        return None
    what = "write" if is_write else "read"
    detail = f"unmapped memory {what} of {length} bytes at {addr:#x}"
    if not ctx.on_fault(ctx, "unmapped-memory", detail):
        ctx.reason = detail
        return VcpuState.FAILED
    if not is_write:
        ctx.vcpu.complete_mmio_read(b"\xff" * length)  # reads float high, like open bus
    return None


def flood_check(ctx: VcpuContext, window_start: float) -> tuple[float, VcpuState | None]:
    """After ``FLOOD_WINDOW`` exits: the next window's start, and FAILED if the rate since
    ``window_start`` is a flood the policy does not keep."""
    now = time.monotonic()
    limit = ctx.flood_limit
    if limit is not None:
        rate = FLOOD_WINDOW / max(now - window_start, 1e-9)
        detail = f"{rate:.0f} exits/s (limit {limit:.0f})"
        if rate > limit and not ctx.on_fault(ctx, "io-flood", detail):
            ctx.reason = "I/O flood"
            return now, VcpuState.FAILED
    return now, None
