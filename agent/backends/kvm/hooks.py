"""Hook semantics on a port-I/O exit, HyperDbg's ``!ioin`` / ``!ioout`` done on KVM.

For an exit whose port has a rule, :meth:`HookedIo.io` fetches the registers and decodes the
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
"""

from __future__ import annotations

import struct
import time
from typing import TYPE_CHECKING

from agent.backends.kvm import _sys as S
from agent.backends.kvm.decode import Insn, decode_at, decode_out_before, out_rip_advances
from agent.backends.kvm.memory import GuestMemory
from agent.errors import KvmError
from agent.events import Event
from agent.hooks.table import HookRule, HookTable
from agent.model import Direction, Stage

if TYPE_CHECKING:
    from agent.backends.kvm.runner import Breaks, VcpuRunner

__all__ = ["HookedIo"]

_REGS = struct.Struct("<18Q")
_MASK = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFF_FFFF}
CR0_PG = 1 << 31  # SDM vol. 3, 2.5
EFER_LMA = 1 << 10
RFLAGS_DF = 1 << 10  # direction flag: string ops go down (SDM vol. 1, 3.4.3)


class _Access:
    """What one hooked exit is about, shared by its events."""

    def __init__(self, runner: VcpuRunner, is_in: bool, size: int, port: int, count: int) -> None:
        vcpu = runner.vcpu
        self.regs = vcpu.exit_regs()
        self.sregs = vcpu.exit_sregs()
        self.long = bool(self.sregs.efer & EFER_LMA and self.sregs.cs.l)
        self.paging = bool(self.sregs.cr0 & CR0_PG)
        self.is_in, self.size, self.port, self.count = is_in, size, port, count
        self.regs_map = dict(zip(S.REG_NAMES, _REGS.unpack(self.regs), strict=True))
        self.ts = time.time_ns()


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
        self.notify = lambda kind, fields: None  # replaced by the VM: outlet.notice

    @staticmethod
    def ports(table: HookTable) -> tuple[frozenset[int] | None, frozenset[int] | None]:
        """Ports worth a ``match`` per direction (None: every port)."""
        return table.hooked_ports(Direction.IN), table.hooked_ports(Direction.OUT)

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

    def decode(self, runner: VcpuRunner, acc: _Access) -> Insn | None:
        rip = acc.regs.rip
        cs = 0 if acc.long else acc.sregs.cs.base
        if not acc.is_in and out_rip_advances():
            before = self.read_linear(runner, acc, cs + rip - 3, 3)
            insn = decode_out_before(before, rip, acc.port, acc.regs.rdx)
            if insn is not None:
                return insn
        return decode_at(self.read_linear(runner, acc, cs + rip, 15), rip, acc.is_in, acc.long)

    # -- the hook path -----------------------------------------------------------------------

    def io(
        self, runner: VcpuRunner, is_in: bool, size: int, port: int, count: int, off: int
    ) -> None:
        """Handle a port-I/O exit on a hooked port (see the module docstring)."""
        assert runner.table is not None
        direction = Direction.IN if is_in else Direction.OUT
        rules = runner.table.match(direction, port, self.vm_id, runner.index)
        if not rules:
            if is_in:
                runner.emulate_in(size, port, count, off)
            else:
                runner.emulate_out(size, port, count, off)
            return
        acc = _Access(runner, is_in, size, port, count)
        insn = self.decode(runner, acc) or Insn(acc.regs.rip, 0, count > 1, False)
        values = [] if is_in else runner.get_values(size, count, off)
        skip = False
        for rule in rules:
            if rule.stage & Stage.PRE:
                skip |= rule.short_circuit
                values = self._fire(runner, acc, insn, rule, Stage.PRE, values)
        if skip:
            self._skip(runner, acc, insn, off)
            return
        if is_in:
            forced = values  # a pre-stage resume value replaces what is read
            values = [runner.bus.read(port, size) & _MASK[size] for _ in range(count)]
            values = forced or values
        for rule in rules:
            if rule.stage & Stage.POST:
                values = self._fire(runner, acc, insn, rule, Stage.POST, values)
        if is_in:
            runner.put_values(size, off, values)
        else:
            for value in values:
                runner.bus.write(port, size, value)

    def _fire(
        self, runner: VcpuRunner, acc: _Access, insn: Insn, rule: HookRule, stage: Stage,
        values: list[int],
    ) -> list[int]:  # fmt: skip
        """One event for ``rule`` at ``stage``; returns the (possibly changed) values."""
        mask = _MASK[acc.size]
        value_set = None
        changes = (stage is Stage.POST) if acc.is_in else (stage is Stage.PRE)
        if changes and rule.set_value is not None:
            value_set = rule.set_value & mask
            values = [value_set] * acc.count
        ev = Event(
            hook_id=rule.id, ts=acc.ts, dir=Direction.IN if acc.is_in else Direction.OUT,
            port=acc.port, size=acc.size, count=acc.count, string=insn.string, rep=insn.rep,
            value=values[0] if values else 0, data=tuple(values) if insn.string else (),
            vm=self.vm_id, vm_name=self.vm_name, vcpu=runner.index, rip=insn.start,
            regs=acc.regs_map, stage=stage, value_set=value_set,
            skipped=rule.short_circuit and stage is Stage.PRE,
        )  # fmt: skip
        runner.add_event(ev)
        if rule.break_:
            value = self._break(runner, acc, rule, ev)
            if value is not None and (acc.is_in or stage is Stage.PRE):
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
        runner.outlet.notice("break", fields)
        resumed, value = runner.wait_break(break_id, self.break_timeout)
        if not resumed and self.breaks.take(break_id) is not None:
            runner.outlet.notice("break-timeout", {**fields, "resumed": "timeout"})
        elif not resumed:  # resume() won the race with the timeout: its command is queued
            resumed, value = runner.wait_break(break_id, 1.0)
        return value

    def _skip(self, runner: VcpuRunner, acc: _Access, insn: Insn, off: int) -> None:
        """Complete the exit without letting the guest run, then undo its effects."""
        if not acc.is_in and not insn.string:
            return  # a plain OUT: not emulating it is skipping it
        saved, dest, old = S.KvmRegs.from_buffer_copy(acc.regs), 0, b""
        if acc.is_in and insn.string:
            n = acc.size * acc.count
            dest = acc.regs.rdi - (n - acc.size if acc.regs.rflags & RFLAGS_DF else 0)
            dest += 0 if acc.long else acc.sregs.es.base
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
