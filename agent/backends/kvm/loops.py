"""The exit loops of a vCPU: the C fast path's driver and the pure Python loop.

Both are functions over a :class:`~.context.VcpuContext` with the same semantics. Each returns
the vCPU's next state, or None when ``KVM_RUN`` was interrupted (a kick: the runner reads its
commands and calls the loop again). Nothing here blocks except ``KVM_RUN`` itself; a break
suspends the exit (``ctx.suspended``) and returns ``PAUSED``.

With the C fast path (:mod:`.fast`, the default where a C compiler exists), ``fastpath.c`` runs
``KVM_RUN`` without the GIL and answers open-bus ports and observe-only hooked accesses itself
(those become per-hook :class:`~agent.columns.Block` columns in ``ctx.flush``); every other exit
comes back here. The C ring is drained before Python handles an exit that can make events, so
events keep their order.

The Python loop's hot path is the port-I/O exit with no matching hook: read the exit with one
``struct.unpack_from`` on the ``kvm_run`` mapping, answer through the bus, re-enter — no
register fetch. Only when the hook table has a rule for the port does the loop hand the exit to
:mod:`.hookpath` (plans per port cached in ``ctx.plans`` until the table changes). The one place
in Python that issues ``KVM_RUN`` is :meth:`~._kvm.Vcpu.run_raw`.
"""

from __future__ import annotations

import errno
import struct
import time

from agent.backends.kvm import _sys as S
from agent.backends.kvm import hookpath
from agent.backends.kvm.abi import P_COND, P_HOOKED, P_OBSERVE, R_ERRNO, R_FLUSH, R_TICK, Plan
from agent.backends.kvm.commands import VcpuState
from agent.backends.kvm.context import MASK, VcpuContext
from agent.backends.kvm.fast import FastPath
from agent.backends.kvm.slowexits import FLOOD_WINDOW, flood_check, other_exit
from agent.errors import KvmError

__all__ = ["COUNT_EVERY", "fast_loop", "python_loop"]

COUNT_EVERY = 0x3FF  # the Python loop publishes its exit counter every 1024 exits
# linux/kvm.h kvm_run.io at offset 32: direction u8, size u8, port u16, count u32, data_offset u64
_IO = struct.Struct("=BBHIQ")
PAUSED = VcpuState.PAUSED


def python_loop(ctx: VcpuContext) -> VcpuState | None:
    """Run the guest with every exit handled in Python (see the module docstring)."""
    run_raw, run_map, unpack = ctx.vcpu.run_raw, ctx.vcpu.run_map, _IO.unpack_from
    bus_read, bus_write, table = ctx.bus.read, ctx.bus.write, ctx.table
    in_ports, out_ports = ctx.ports()
    exits, window_start = ctx.py_exits, time.monotonic()
    try:
        while True:
            reason = run_raw()
            if reason == S.EXIT_INTR:
                return None
            exits += 1
            if reason != S.EXIT_IO:
                ctx.py_exits = exits
                if (next_state := other_exit(ctx, reason)) is not None:
                    return next_state
                continue
            d, size, port, count, off = unpack(run_map, S.RUN_EXIT_OFFSET)
            if table.version != ctx.version:
                ctx.version, ctx.plans = table.version, {}
                in_ports, out_ports = ctx.ports()
            if d == S.EXIT_IO_IN:
                if in_ports is None or port in in_ports:
                    if (suspended := hookpath.io(ctx, True, size, port, count, off)) is not None:
                        ctx.suspended = suspended
                        return PAUSED
                elif count == 1:
                    value = bus_read(port, size) & MASK[size]
                    run_map[off : off + size] = value.to_bytes(size, "little")
                else:
                    ctx.emulate_in(size, port, count, off)
            elif out_ports is None or port in out_ports:
                if (suspended := hookpath.io(ctx, False, size, port, count, off)) is not None:
                    ctx.suspended = suspended
                    return PAUSED
            elif count == 1:
                bus_write(port, size, int.from_bytes(run_map[off : off + size], "little"))
            else:
                ctx.emulate_out(size, port, count, off)
            if not exits & COUNT_EVERY:  # publish the counter now and then, not per exit
                ctx.py_exits = exits
                if not exits % FLOOD_WINDOW:
                    window_start, next_state = flood_check(ctx, window_start)
                    if next_state is not None:
                        return next_state
    finally:
        ctx.py_exits = exits


def fast_loop(ctx: VcpuContext, fast: FastPath) -> VcpuState | None:
    """Run the guest in the C loop; Python sees only the exits C hands up."""
    st, run, unpack, run_map = fast.state, fast.run, _IO.unpack_from, ctx.vcpu.run_map
    table = ctx.table
    window_start, window_exits = time.monotonic(), int(st.exits)
    while True:
        if table.version != ctx.version:
            ctx.flush()  # the ring was recorded under the old plans
            ctx.version = table.version
            _replan(ctx, fast)
        ret = run()
        if ret == R_FLUSH:
            ctx.flush()
            continue
        if ret == R_TICK:
            if st.exits - window_exits >= FLOOD_WINDOW:
                window_exits = st.exits
                window_start, next_state = flood_check(ctx, window_start)
                if next_state is not None:
                    return next_state
            continue
        if ret == R_ERRNO:
            if st.err in (errno.EINTR, errno.EAGAIN):
                return None
            raise KvmError("KVM_RUN", st.err)
        ctx.slow_exits += 1
        reason = ctx.vcpu.kvm_run.exit_reason
        if reason != S.EXIT_IO:
            if (next_state := other_exit(ctx, reason)) is not None:
                return next_state
            continue
        d, size, port, count, off = unpack(run_map, S.RUN_EXIT_OFFSET)
        is_in = d == S.EXIT_IO_IN
        key = port | is_in << 16
        planned = fast.planned(key)
        if planned not in (P_OBSERVE, P_HOOKED, P_COND):
            if is_in:  # a device
                ctx.emulate_in(size, port, count, off)
            else:
                ctx.emulate_out(size, port, count, off)
            continue
        if st.n:
            ctx.flush()  # keep event order: what C recorded came first
        ctx.last_key = None
        suspended = hookpath.io(ctx, is_in, size, port, count, off)
        plan = ctx.plans.get(key)
        if plan is not None:
            _teach(ctx, fast, plan, key, planned, count)
        if suspended is not None:
            ctx.suspended = suspended
            return PAUSED


def _teach(
    ctx: VcpuContext, fast: FastPath, plan: Plan, key: int, planned: int, count: int
) -> None:
    """After Python handled a hooked exit: settle a lazily planned port, and cache the
    instruction for C when the port is one C can observe."""
    if planned == P_HOOKED:
        fast.resolve(key, plan)  # a lazily planned port (`!ioin all`)
    last = ctx.last_key
    if count == 1 and last is not None and fast.planned(key) in (P_OBSERVE, P_COND):
        cached = ctx.insns.code(last)
        if cached is not None and ctx.bus.slots[key & 0xFFFF] is None:
            fast.install(last[0], last[1], last[2], *cached)


def _replan(ctx: VcpuContext, fast: FastPath) -> None:
    """A new table: plans for every hooked port now (or lazily for "all ports")."""
    ctx.plans = {}
    lazy: set[int] = set()
    plans: dict[int, Plan] = {}
    for is_in, ports in zip((True, False), ctx.ports(), strict=True):
        if ports is None:
            lazy.add(int(is_in))
            continue
        for port in ports:
            plans[port | is_in << 16] = ctx.plan(is_in, port)
    fast.replan(plans, lazy)
