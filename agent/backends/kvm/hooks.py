"""Hook semantics on a port-I/O exit, HyperDbg's ``!ioin`` / ``!ioout`` done on KVM.

For an exit whose port has a rule, :meth:`HookedIo.io` reads the registers and decodes the
instruction, then, for the matching rules (newest first):

- **pre** rules run before emulation: an OUT's ``set`` changes what is written; ``sc on`` skips
  the instruction (no device access, no post stage; an IN leaves RAX alone, an INS leaves memory
  alone — the VMM completes the exit with ``immediate_exit`` set and restores the registers with
  RIP past the instruction); ``break`` pauses the vCPU until resumed (or the break timeout);
- emulation (the bus), one access per element;
- **post** rules run after: they see the value(s) read, an IN's ``set`` changes what the guest
  reads; ``break`` again pauses. A resume value replaces what an IN reads or an OUT writes.

Events carry the registers *at the exit*. For string I/O each event carries every element of that
exit: KVM hands one exit up to a page (and 1 KiB) of INS elements and advances RDI/RCX itself when
the guest resumes; OUTS exits once per element, with RSI/RCX already advanced in the registers.

Cost (where the C fast path does not take the exit, see :mod:`.fast`): a hooked exit is paid
twice (the vCPU thread holds the GIL the event loop needs), so the
work per exit is decided once per table version and port (:class:`Plan`: the matching rules,
and whether any of them can change the access — observe-only rules take :meth:`HookedIo._observe`,
no second pass over values); registers come from the ``kvm_run`` sync area with one
``unpack_from``; a register dict is shared by consecutive exits with identical registers (a
polling loop) — events never mutate it; instructions are decoded once per RIP (:meth:`insn`).
"""

from __future__ import annotations

import struct
from time import time_ns
from typing import TYPE_CHECKING

from agent.backends.kvm import _sys as S
from agent.backends.kvm.decode import Insn, decode_at, decode_out_before, out_rip_advances
from agent.backends.kvm.memory import GuestMemory
from agent.errors import KvmError
from agent.events import Event
from agent.hooks.table import HookRule, HookTable
from agent.model import Direction, Stage
from agent.notices import Notice, NoticeKind

if TYPE_CHECKING:
    import mmap

    from agent.backends.kvm._kvm import Vcpu
    from agent.backends.kvm.runner import Breaks, VcpuRunner

__all__ = ["HookedIo", "Plan"]

_REGS = struct.Struct("<18Q")  # asm/kvm.h struct kvm_regs, S.REG_NAMES order
_RIP, _RDX, _RFLAGS = 16, 3, 17  # indexes in S.REG_NAMES
_SEG, _SR = S.KvmSegment, S.KvmSregs
# asm/kvm.h struct kvm_sregs: cs.base, cs.l, cr0, cr3, efer — what the decode needs from it
_MODE = struct.Struct(
    f"<Q{_SEG.l.offset - 8}xB{_SR.cr0.offset - _SEG.l.offset - 1}xQ"
    f"{_SR.cr3.offset - _SR.cr0.offset - 8}xQ{_SR.efer.offset - _SR.cr3.offset - 8}xQ"
)
_MASK = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFF_FFFF}
_ONES = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFF_FFFF}
CR0_PG = 1 << 31  # SDM vol. 3, 2.5
EFER_LMA = 1 << 10
RFLAGS_DF = 1 << 10  # direction flag: string ops go down (SDM vol. 1, 3.4.3)
INSN_CACHE_MAX = 4096  # decoded instructions kept per VM (cleared when full)
FLUSH_NS = 5_000_000  # the longest an event waits in a vCPU thread while exits keep coming
IN, OUT, PRE, POST = Direction.IN, Direction.OUT, Stage.PRE, Stage.POST
_Mode = tuple[int, ...]  # _MODE's fields
_InsnKey = tuple[int, _Mode, int]  # (rip, mode, port | is_in << 16 | (dx == port) << 17)


class Plan:
    """What an exit on one (direction, port) of one vCPU needs, for one table version."""

    __slots__ = ("post", "pre", "rules", "simple")

    def __init__(self, rules: list[HookRule]) -> None:
        self.rules = rules  # matching rules, newest first
        self.pre = tuple(r for r in rules if r.stage & PRE)
        self.post = tuple(r for r in rules if r.stage & POST)
        # observe-only: no rule skips, sets a value or breaks, so events are all there is to do
        self.simple = not any(r.short_circuit or r.break_ or r.set_value is not None for r in rules)


class _Access:
    """What one hooked exit is about, shared by its events (the general path's view)."""

    __slots__ = (
        "count", "cr3", "cs_base", "is_in", "long", "paging", "port", "regs", "regs_map", "size",
        "ts",
    )  # fmt: skip

    def __init__(self, ts: int, regs: tuple[int, ...], regs_map: dict[str, int], mode: _Mode,
                 is_in: bool, size: int, port: int, count: int) -> None:  # fmt: skip
        cs_base, cs_l, cr0, cr3, efer = mode
        self.ts, self.regs, self.regs_map = ts, regs, regs_map
        self.long = bool(efer & EFER_LMA and cs_l)
        self.paging = bool(cr0 & CR0_PG)
        self.cs_base = 0 if self.long else cs_base
        self.cr3 = cr3 if self.paging else -1
        self.is_in, self.size, self.port, self.count = is_in, size, port, count


def _fetch(vcpu: Vcpu) -> tuple[tuple[int, ...], _Mode]:
    """Registers and mode at the exit: from kvm_run's sync area (no ctypes, no ioctl), else by
    KVM_GET_REGS / KVM_GET_SREGS."""
    if vcpu.regs_synced:
        run_map = vcpu.run_map
        regs = _REGS.unpack_from(run_map, S.RUN_SYNC_REGS_OFFSET)
        return regs, _MODE.unpack_from(run_map, S.RUN_SYNC_SREGS_OFFSET)
    sregs = vcpu.get_sregs()
    mode = (sregs.cs.base, sregs.cs.l, sregs.cr0, sregs.cr3, sregs.efer)
    return _REGS.unpack(vcpu.get_regs()), mode


class HookedIo:
    """The hook path of one VM's vCPU loops."""

    def __init__(
        self, memory: GuestMemory, breaks: Breaks, vm_id: int, vm_name: str, break_timeout: float
    ) -> None:
        self.memory = memory
        self.breaks = breaks
        self.vm_id = vm_id
        self.vm_name = vm_name
        self.break_timeout = break_timeout
        self._insns: dict[_InsnKey, tuple[mmap.mmap, int, bytes, Insn, int]] = {}  # see insn()

    @staticmethod
    def ports(table: HookTable) -> tuple[frozenset[int] | None, frozenset[int] | None]:
        """Ports worth a ``match`` per direction (None: every port)."""
        return table.hooked_ports(Direction.IN), table.hooked_ports(Direction.OUT)

    def plan(self, runner: VcpuRunner, is_in: bool, port: int) -> Plan:
        """The rules of this access (cached per runner until the table changes)."""
        key = port | is_in << 16
        plan = runner.plans.get(key)
        if plan is None:
            assert runner.table is not None
            rules = runner.table.match(IN if is_in else OUT, port, self.vm_id, runner.index)
            plan = runner.plans[key] = Plan(rules)
        return plan

    # -- memory by linear address ------------------------------------------------------------

    def read_linear(self, runner: VcpuRunner, acc: _Access, linear: int, n: int) -> bytes:
        phys = runner.vcpu.translate(linear) if acc.paging else linear & 0xFFFF_FFFF
        if phys is None:
            return b""
        try:
            return self.memory.read(phys, n)
        except KvmError:
            return b""

    def write_linear(self, runner: VcpuRunner, acc: _Access, linear: int, data: bytes) -> None:
        phys = runner.vcpu.translate(linear) if acc.paging else linear & 0xFFFF_FFFF
        if phys is not None:
            self.memory.write(phys, data)

    def cached_insn(self, key: _InsnKey) -> Insn | None:
        """The instruction decoded at ``key`` if the guest's bytes there are unchanged."""
        hit = self._insns.get(key)
        if hit is None:
            return None
        mapping, off, code, insn, _ = hit
        return insn if mapping[off : off + len(code)] == code else None

    def cached_code(self, key: _InsnKey) -> tuple[Insn, int, bytes] | None:
        """(instruction, host address of its bytes, the bytes) cached under ``key``."""
        hit = self._insns.get(key)
        return None if hit is None else (hit[3], hit[4], hit[2])

    def insn(self, runner: VcpuRunner, acc: _Access, key: _InsnKey) -> Insn:
        """Decode the instruction behind the exit and cache it under ``key`` with the bytes it
        came from; :meth:`cached_insn` checks them on every use, so self-modifying code is seen.
        Assumes code does not move to another physical page under an unchanged CR3 (the guest
        would need a TLB flush: rare enough)."""
        linear, code, insn = self.decode(runner, acc)
        if insn is None:
            return Insn(acc.regs[_RIP], 0, acc.count > 1, False)
        phys = runner.vcpu.translate(linear) if acc.paging else linear & 0xFFFF_FFFF
        found = None if phys is None else self.memory.find(phys)
        if found is not None and found[1] + len(code) <= found[0].offset + found[0].size:
            if len(self._insns) >= INSN_CACHE_MAX:
                self._insns.clear()
            region, off = found
            host = region.host + off - region.offset if region.host else 0
            self._insns[key] = (region.mapping, off, code, insn, host)
        return insn

    def decode(self, runner: VcpuRunner, acc: _Access) -> tuple[int, bytes, Insn | None]:
        """Decode from guest memory: (linear address of the bytes used, the bytes, insn)."""
        rip, cs = acc.regs[_RIP], acc.cs_base
        if not acc.is_in and out_rip_advances():
            before = self.read_linear(runner, acc, cs + rip - 3, 3)
            out = decode_out_before(before, rip, acc.port, acc.regs[_RDX])
            if out is not None:
                return cs + rip - 3, before, out
        code = self.read_linear(runner, acc, cs + rip, 15)
        insn = decode_at(code, rip, acc.is_in, acc.long)
        return cs + rip, code[: insn.length if insn else 0], insn

    # -- the hook path -----------------------------------------------------------------------

    def io(
        self, runner: VcpuRunner, is_in: bool, size: int, port: int, count: int, off: int
    ) -> None:
        """Handle a port-I/O exit on a hooked port (see the module docstring)."""
        plan = runner.plans.get(port | is_in << 16) or self.plan(runner, is_in, port)
        if not plan.rules:
            if is_in:
                runner.emulate_in(size, port, count, off)
            else:
                runner.emulate_out(size, port, count, off)
            return
        ts = time_ns()
        regs, mode = _fetch(runner.vcpu)
        if regs != runner.last_regs:  # a dict of 18 ints costs more than the rest of an event
            runner.last_regs, runner.last_map = regs, dict(zip(S.REG_NAMES, regs, strict=True))
        regs_map = runner.last_map  # shared by exits with the same registers: never mutated
        key = (regs[_RIP], mode, port | is_in << 16 | (regs[_RDX] & 0xFFFF == port) << 17)
        runner.last_key = key
        acc = None
        insn = self.cached_insn(key)
        if insn is None:
            acc = _Access(ts, regs, regs_map, mode, is_in, size, port, count)
            insn = self.insn(runner, acc, key)
        if plan.simple:
            self._observe(runner, plan, insn, ts, regs_map, is_in, size, port, count, off)
            return
        acc = acc or _Access(ts, regs, regs_map, mode, is_in, size, port, count)
        values = [] if is_in else runner.get_values(size, count, off)
        skip = False
        for rule in plan.pre:
            skip |= rule.short_circuit
            values = self._fire(runner, acc, insn, rule, PRE, values)
        if skip:
            self._skip(runner, acc, insn, off)
            return
        if is_in:
            forced = values  # a pre-stage resume value replaces what is read
            values = [runner.bus.read(port, size) & _MASK[size] for _ in range(count)]
            values = forced or values
        for rule in plan.post:
            values = self._fire(runner, acc, insn, rule, POST, values)
        if is_in:
            runner.put_values(size, off, values)
        else:
            for value in values:
                runner.bus.write(port, size, value)

    def _observe(
        self, runner: VcpuRunner, plan: Plan, insn: Insn, ts: int, regs: dict[str, int],
        is_in: bool, size: int, port: int, count: int, off: int,
    ) -> None:  # fmt: skip
        """An exit whose rules only observe: events, then (IN) or around (OUT) the emulation."""
        vm, name, vcpu = self.vm_id, self.vm_name, runner.index
        string, rep, rip = insn.string, insn.rep, insn.start
        direction = IN if is_in else OUT
        events = runner.events
        if not events:
            runner.batch_started(ts)
        if is_in:
            for rule in plan.pre:  # the value is not known yet
                events.append(Event(rule.id, ts, direction, port, size, count, string, rep, 0,
                                    (), vm, name, vcpu, -1, rip, regs, PRE))  # fmt: skip
            values = runner.emulate_in(size, port, count, off)
        else:
            values = runner.get_values(size, count, off)
        data = tuple(values) if string else ()
        for rule in plan.pre if not is_in else ():
            events.append(Event(rule.id, ts, direction, port, size, count, string, rep, values[0],
                                data, vm, name, vcpu, -1, rip, regs, PRE))  # fmt: skip
        if not is_in:
            runner.emulate_out(size, port, count, off)
        for rule in plan.post:
            events.append(Event(rule.id, ts, direction, port, size, count, string, rep, values[0],
                                data, vm, name, vcpu, -1, rip, regs, POST))  # fmt: skip
        runner.events_added(ts)

    def _fire(
        self, runner: VcpuRunner, acc: _Access, insn: Insn, rule: HookRule, stage: Stage,
        values: list[int],
    ) -> list[int]:  # fmt: skip
        """One event for ``rule`` at ``stage``; returns the (possibly changed) values."""
        mask = _MASK[acc.size]
        value_set = None
        changes = (stage is POST) if acc.is_in else (stage is PRE)
        if changes and rule.set_value is not None:
            value_set = rule.set_value & mask
            values = [value_set] * acc.count
        ev = Event(
            rule.id, acc.ts, IN if acc.is_in else OUT, acc.port, acc.size, acc.count, insn.string,
            insn.rep, values[0] if values else 0, tuple(values) if insn.string else (),
            self.vm_id, self.vm_name, runner.index, -1, insn.start, acc.regs_map, stage,
            value_set, rule.short_circuit and stage is PRE,
        )  # fmt: skip
        runner.add_event(ev)
        if rule.break_:
            value = self._break(runner, acc, rule, ev)
            if value is not None and (acc.is_in or stage is PRE):
                values = [value & mask] * acc.count
        return values

    def _break(self, runner: VcpuRunner, acc: _Access, rule: HookRule, ev: Event) -> int | None:
        break_id = self.breaks.new(runner)
        ev.break_id = break_id
        runner.flush()
        fields: dict[str, object] = {
            "break_id": break_id, "hook_id": rule.id, "vm": self.vm_id, "vm_name": self.vm_name,
            "vcpu": runner.index, "port": acc.port, "dir": ev.dir.label,
            "stage": ev.stage.label, "timeout_s": self.break_timeout,
        }  # fmt: skip
        runner.outlet.notice(Notice(NoticeKind.BREAK, fields))
        resumed, value = runner.wait_break(break_id, self.break_timeout)
        if not resumed and self.breaks.take(break_id) is not None:
            timeout = {**fields, "resumed": "timeout"}
            runner.outlet.notice(Notice(NoticeKind.BREAK_TIMEOUT, timeout))
        elif not resumed:  # resume() won the race with the timeout: its command is queued
            resumed, value = runner.wait_break(break_id, 1.0)
        return value

    def _skip(self, runner: VcpuRunner, acc: _Access, insn: Insn, off: int) -> None:
        """Complete the exit without letting the guest run, then undo its effects."""
        if not acc.is_in and not insn.string:
            return  # a plain OUT: not emulating it is skipping it
        saved, dest, old = S.KvmRegs(*acc.regs), 0, b""
        if acc.is_in and insn.string:
            n = acc.size * acc.count
            dest = saved.rdi - (n - acc.size if saved.rflags & RFLAGS_DF else 0)
            dest += 0 if acc.long else runner.vcpu.exit_sregs().es.base
            old = self.read_linear(runner, acc, dest, n)
        runner.vcpu.kvm_run.immediate_exit = 1
        runner.vcpu.run_raw()  # completes the pending I/O, returns EINTR before guest code
        runner.vcpu.kvm_run.immediate_exit = 0
        if old:
            self.write_linear(runner, acc, dest, old)
        if insn.length:
            saved.rip = insn.start + insn.length
            runner.vcpu.set_regs(saved)
        runner.drain()  # a kick that arrived meanwhile lost its immediate_exit; honour it now
