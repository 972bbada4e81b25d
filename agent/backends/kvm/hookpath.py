"""Hook semantics on a port-I/O exit, HyperDbg's ``!ioin`` / ``!ioout`` done on KVM.

Functions over a :class:`~.context.VcpuContext`, with no state of their own. For an exit whose
port has a rule, :func:`io` reads the registers and decodes the instruction, then, for the
matching rules (newest first):

- **pre** rules run before emulation: an OUT's ``set`` changes what is written; ``sc on`` skips
  the instruction (no device access, no post stage; an IN leaves RAX alone, an INS leaves memory
  alone — the VMM completes the exit with ``immediate_exit`` set and restores the registers with
  RIP past the instruction); ``break`` pauses the vCPU until resumed (or the break timeout);
- emulation (the bus), one access per element;
- **post** rules run after: they see the value(s) read, an IN's ``set`` changes what the guest
  reads; ``break`` again pauses. A resume value replaces what an IN reads or an OUT writes.

A break does not block here: the rest of the exit is a generator that yields a
:class:`~.context.BreakPoint`; :func:`io` returns it as :class:`~.context.Suspended` and the
vCPU's state machine pauses, then finishes the exit with :func:`advance` and the resume value.

Events carry the registers *at the exit*. For string I/O each event carries every element of that
exit: KVM hands one exit up to a page (and 1 KiB) of INS elements and advances RDI/RCX itself when
the guest resumes; OUTS exits once per element, with RSI/RCX already advanced in the registers.

Cost (where the C fast path does not take the exit, see :mod:`.fast`): the work per exit is
decided once per table version and port (:class:`~.abi.Plan`; observe-only rules take
:func:`_observe`, no second pass over values); registers come from the ``kvm_run`` sync area with
one ``unpack_from``; a register dict is shared by consecutive exits with identical registers (a
polling loop) — events never mutate it; instructions are decoded once per RIP (:mod:`.insns`).
"""

from __future__ import annotations

import struct
from collections.abc import Generator
from time import time_ns

from agent.backends.kvm import _sys as S
from agent.backends.kvm._kvm import Vcpu
from agent.backends.kvm.abi import Plan
from agent.backends.kvm.context import MASK, BreakPoint, Suspended, VcpuContext
from agent.backends.kvm.decode import Insn
from agent.backends.kvm.insns import RDX, RIP, Access, Mode, read_linear, write_linear
from agent.backends.kvm.scripting import ScriptMemory, write_registers
from agent.events import Event
from agent.hooks.table import HookRule
from agent.model import Direction, Stage
from agent.script.hit import Hit, gate_hit, script_hit

__all__ = ["advance", "io"]

_REGS = struct.Struct("<18Q")  # asm/kvm.h struct kvm_regs, S.REG_NAMES order
_SEG, _SR = S.KvmSegment, S.KvmSregs
# asm/kvm.h struct kvm_sregs: cs.base, cs.l, cr0, cr3, efer — what the decode needs from it
_MODE = struct.Struct(
    f"<Q{_SEG.l.offset - 8}xB{_SR.cr0.offset - _SEG.l.offset - 1}xQ"
    f"{_SR.cr3.offset - _SR.cr0.offset - 8}xQ{_SR.efer.offset - _SR.cr3.offset - 8}xQ"
)
RFLAGS_DF = 1 << 10  # direction flag: string ops go down (SDM vol. 1, 3.4.3)
IN, OUT, PRE, POST = Direction.IN, Direction.OUT, Stage.PRE, Stage.POST
Rest = Generator[BreakPoint, int | None, None]


def _fetch(vcpu: Vcpu) -> tuple[tuple[int, ...], Mode]:
    """Registers and mode at the exit: from kvm_run's sync area (no ctypes, no ioctl), else by
    KVM_GET_REGS / KVM_GET_SREGS."""
    if vcpu.regs_synced:
        run_map = vcpu.run_map
        regs = _REGS.unpack_from(run_map, S.RUN_SYNC_REGS_OFFSET)
        return regs, _MODE.unpack_from(run_map, S.RUN_SYNC_SREGS_OFFSET)
    sregs = vcpu.get_sregs()
    mode = (sregs.cs.base, sregs.cs.l, sregs.cr0, sregs.cr3, sregs.efer)
    return _REGS.unpack(vcpu.get_regs()), mode


def io(
    ctx: VcpuContext, is_in: bool, size: int, port: int, count: int, off: int
) -> Suspended | None:
    """Handle a port-I/O exit on a hooked port; the exit's rest if a break paused it."""
    plan = ctx.plans.get(port | is_in << 16) or ctx.plan(is_in, port)
    if not plan.rules:
        if is_in:
            ctx.emulate_in(size, port, count, off)
        else:
            ctx.emulate_out(size, port, count, off)
        return None
    ts = time_ns()
    regs, mode = _fetch(ctx.vcpu)
    if regs != ctx.last_regs:  # a dict of 18 ints costs more than the rest of an event
        ctx.last_regs, ctx.last_map = regs, dict(zip(S.REG_NAMES, regs, strict=True))
    regs_map = ctx.last_map  # shared by exits with the same registers: never mutated
    key = (regs[RIP], mode, port | is_in << 16 | (regs[RDX] & 0xFFFF == port) << 17)
    ctx.last_key = key
    acc = None
    insn = ctx.insns.cached(key)
    if insn is None:
        acc = Access(ts, regs, regs_map, mode, is_in, size, port, count)
        insn = ctx.insns.decode(ctx.vcpu, acc, key)
    if plan.simple:
        _observe(ctx, plan, insn, ts, regs_map, is_in, size, port, count, off)
        return None
    acc = acc or Access(ts, regs, regs_map, mode, is_in, size, port, count)
    return advance(_act(ctx, plan, acc, insn, off), None)


def advance(rest: Rest, value: int | None) -> Suspended | None:
    """Run the rest of an exit (with the resume value of the break it stopped at): None when
    it is done, else where it stopped next."""
    try:
        at = rest.send(value)
    except StopIteration:
        return None
    return Suspended(rest, at)


def _observe(
    ctx: VcpuContext, plan: Plan, insn: Insn, ts: int, regs: dict[str, int],
    is_in: bool, size: int, port: int, count: int, off: int,
) -> None:  # fmt: skip
    """An exit whose rules only observe: events, then (IN) or around (OUT) the emulation."""
    vm, name, vcpu = ctx.vm_id, ctx.vm_name, ctx.index
    string, rep, rip = insn.string, insn.rep, insn.start
    direction = IN if is_in else OUT
    events = ctx.events
    if not events:
        ctx.batch_started(ts)
    if is_in:
        for rule in plan.pre:  # the value is not known yet
            events.append(Event(rule.id, ts, direction, port, size, count, string, rep, 0,
                                (), vm, name, vcpu, -1, rip, regs, PRE))  # fmt: skip
        values = ctx.emulate_in(size, port, count, off)
    else:
        values = ctx.get_values(size, count, off)
    data = tuple(values) if string else ()
    for rule in plan.pre if not is_in else ():
        events.append(Event(rule.id, ts, direction, port, size, count, string, rep, values[0],
                            data, vm, name, vcpu, -1, rip, regs, PRE))  # fmt: skip
    if not is_in:
        ctx.emulate_out(size, port, count, off)
    for rule in plan.post:
        events.append(Event(rule.id, ts, direction, port, size, count, string, rep, values[0],
                            data, vm, name, vcpu, -1, rip, regs, POST))  # fmt: skip
    ctx.events_added(ts)


def _act(ctx: VcpuContext, plan: Plan, acc: Access, insn: Insn, off: int) -> Rest:
    """An exit whose rules may change it: pre rules, emulation (or the skip), post rules."""
    is_in, size, port, count = acc.is_in, acc.size, acc.port, acc.count
    values = [] if is_in else ctx.get_values(size, count, off)
    skip = False
    changed: dict[str, int] = {}  # registers scripts changed, set when the exit is done
    for rule in plan.pre:
        values, skipped = yield from _fire(ctx, acc, insn, rule, PRE, values, changed)
        skip |= rule.short_circuit or skipped
    if skip:
        _skip(ctx, acc, insn)
        write_registers(ctx, changed, completed=True)  # an IN faked by event_sc: @al as left
        return
    if is_in:
        forced = values  # a pre-stage resume value replaces what is read
        values = [ctx.bus.read(port, size) & MASK[size] for _ in range(count)]
        values = forced or values
    for rule in plan.post:
        values, _ = yield from _fire(ctx, acc, insn, rule, POST, values, changed)
    if is_in:
        ctx.put_values(size, off, values)
    else:
        for value in values:
            ctx.bus.write(port, size, value)
    write_registers(ctx, changed, completed=False)


def _fire(
    ctx: VcpuContext, acc: Access, insn: Insn, rule: HookRule, stage: Stage, values: list[int],
    changed: dict[str, int],
) -> Generator[BreakPoint, int | None, tuple[list[int], bool]]:  # fmt: skip
    """One event for ``rule`` at ``stage`` (and its break): the (changed) values, and whether
    the rule's script skips the instruction (``event_sc``)."""
    mask = MASK[acc.size]
    value_set = None
    hs, hit, memory = rule.script, None, None
    if hs is not None:  # the condition sees the access before the hook's actions
        memory = ScriptMemory(ctx, acc)
        hit = Hit(acc.port, acc.size, acc.is_in, stage is POST, values[0] if values else 0,
                  ctx.vm_id, ctx.index, acc.ts, dict(acc.regs_map) | changed)  # fmt: skip
        if not gate_hit(hs, hit, memory):
            return values, False
    changes = (stage is POST) if acc.is_in else (stage is PRE)
    if changes and rule.set_value is not None:
        value_set = rule.set_value & mask
        values = [value_set] * acc.count
    verdict = None
    if hs is not None and hit is not None:
        hit.value = values[0] if values else 0
        verdict = script_hit(hs, hit, memory)
        if verdict.value is not None:
            value_set = verdict.value
            values = [verdict.value] * acc.count
        if acc.is_in and stage is PRE and not verdict.skip:
            verdict.regs.pop("rax", None)  # lost, as in HyperDbg: the IN overwrites it
        changed.update(verdict.regs)
    skip = verdict is not None and verdict.skip
    ev = Event(
        rule.id, acc.ts, IN if acc.is_in else OUT, acc.port, acc.size, acc.count, insn.string,
        insn.rep, values[0] if values else 0, tuple(values) if insn.string else (),
        ctx.vm_id, ctx.vm_name, ctx.index, -1, insn.start, acc.regs_map, stage,
        value_set, (rule.short_circuit or skip) and stage is PRE,
    )  # fmt: skip
    ev.output = verdict.output if verdict is not None else ""
    ctx.add_event(ev)
    if rule.break_ or (verdict is not None and verdict.pause):
        fields: dict[str, object] = {
            "break_id": "", "hook_id": rule.id, "vm": ctx.vm_id, "vm_name": ctx.vm_name,
            "vcpu": ctx.index, "port": acc.port, "dir": ev.dir.label, "stage": ev.stage.label,
            "timeout_s": ctx.break_timeout,
        }  # fmt: skip
        value = yield BreakPoint(ev, fields)
        if value is not None and (acc.is_in or stage is PRE):
            values = [value & mask] * acc.count
    return values, skip


def _skip(ctx: VcpuContext, acc: Access, insn: Insn) -> None:
    """Complete the exit without letting the guest run, then undo its effects."""
    if not acc.is_in and not insn.string:
        return  # a plain OUT: not emulating it is skipping it
    vcpu = ctx.vcpu
    saved, dest, old = S.KvmRegs(*acc.regs), 0, b""
    if acc.is_in and insn.string:
        n = acc.size * acc.count
        dest = saved.rdi - (n - acc.size if saved.rflags & RFLAGS_DF else 0)
        dest += 0 if acc.long else vcpu.exit_sregs().es.base
        old = read_linear(vcpu, ctx.memory, acc, dest, n)
    vcpu.kvm_run.immediate_exit = 1
    vcpu.run_raw()  # completes the pending I/O, returns EINTR before guest code
    # a kick that arrived meanwhile lost its immediate_exit: re-arm it so the loop sees it
    vcpu.kvm_run.immediate_exit = 0 if ctx.commands.empty() else 1
    if old:
        write_linear(vcpu, ctx.memory, acc, dest, old)
    if insn.length:
        saved.rip = insn.start + insn.length
        vcpu.set_regs(saved)
