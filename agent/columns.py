"""Columns of plain events: :class:`Block`, the in-memory twin of ``EventColumns``.

A block holds plain events of one hook as parallel lists, with no per-event object: the fast
path of the sim and the kvm vCPU loop through the pipeline. The flag bits (``F_*``) are those of
``EventColumns.flags`` (see proto/ioin/v1/events.proto); :func:`column_event` decodes one
event's columns. :mod:`agent.batch` packs blocks into EventBatch messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Self

from agent.events import Event
from agent.model import Direction, Stage

__all__ = [
    "F_OUT",
    "F_POST",
    "F_REGS",
    "F_REP",
    "F_RIP",
    "F_SKIPPED",
    "F_STRING",
    "F_VALUE_SET",
    "SIZE_SHIFT",
    "Block",
    "column_event",
]

# Flag bits of EventColumns.flags (see proto/ioin/v1/events.proto).
F_OUT, F_POST, F_STRING, F_REP, F_SKIPPED, F_VALUE_SET = 1, 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8
F_RIP, F_REGS = 1 << 9, 1 << 10
SIZE_SHIFT = 1


def column_event(
    hook_id: str,
    ts: int,
    port: int,
    value: int,
    vm: int,
    vm_name: str,
    vcpu: int,
    cpu: int,
    count: int,
    f: int,
    seq: int,
) -> Event:
    """An event from its columns, the flag bits decoded (value_set, rip, regs: the caller's)."""
    return Event(
        hook_id,
        ts,
        Direction.OUT if f & F_OUT else Direction.IN,
        port,
        size=(f >> SIZE_SHIFT) & 7,
        count=count,
        string=bool(f & F_STRING),
        rep=bool(f & F_REP),
        value=value,
        vm=vm,
        vm_name=vm_name,
        vcpu=vcpu,
        cpu=cpu,
        stage=Stage.POST if f & F_POST else Stage.PRE,
        skipped=bool(f & F_SKIPPED),
        seq=seq,
    )


@dataclass(slots=True)
class Block:
    """Plain events of one hook as columns, with no per-event object (the fast paths of the sim
    and the kvm vCPU loop).

    Plain means what fits :class:`Event` without ``data``, ``value_set`` or ``break_id``;
    ``flags`` holds size, direction, stage and the string / rep / skipped / rip / regs bits as in
    ``EventColumns.flags`` (never ``F_VALUE_SET``). As in ``EventColumns``, ``rip`` has one
    element per event flagged ``F_RIP`` and ``regs`` ``len(reg_names)`` per event flagged
    ``F_REGS``, in event order. Producers fill every column but ``seq``, which the pipeline fills
    (gap-free, like ``Event.seq``). Every other column has one element per event, and the block
    owns its lists.
    """

    hook_id: str
    ts: list[int]
    port: list[int]
    value: list[int]
    vm: list[int]
    vm_name: list[str]
    vcpu: list[int]
    cpu: list[int]
    count: list[int]
    flags: list[int]
    seq: list[int] = field(default_factory=list)
    rip: list[int] = field(default_factory=list)
    regs: list[int] = field(default_factory=list)
    reg_names: tuple[str, ...] = ()

    @classmethod
    def empty(cls, hook_id: str) -> Self:
        return cls(hook_id, [], [], [], [], [], [], [], [], [], [])

    def __len__(self) -> int:
        return len(self.port)

    def _columns(self) -> tuple[list[Any], ...]:
        c = self
        return (c.ts, c.port, c.value, c.vm, c.vm_name, c.vcpu, c.cpu, c.count, c.flags, c.seq)

    def extend(self, other: Block) -> None:
        """Append ``other``'s events (same hook; same register names if both have registers)."""
        for mine, theirs in zip(self._columns(), other._columns(), strict=True):
            mine.extend(theirs)
        if other.rip:
            self.rip.extend(other.rip)
        if other.regs:
            if self.reg_names and self.reg_names != other.reg_names:
                raise ValueError("Block.extend: different register names")
            self.reg_names = other.reg_names
            self.regs.extend(other.regs)

    def _extra(self, n: int) -> tuple[int, int]:
        """How many ``rip`` and ``regs`` elements belong to the first ``n`` events."""
        size = len(self.port)
        k = len(self.reg_names)
        rips = n if len(self.rip) == size else sum(1 for f in self.flags[:n] if f & F_RIP)
        regs = (
            n * k
            if len(self.regs) == size * k
            else k * sum(1 for f in self.flags[:n] if f & F_REGS)
        )
        return rips, regs

    def head(self, n: int) -> Block:
        """A new block of the first ``n`` events."""
        rips, regs = self._extra(n) if self.rip or self.regs else (0, 0)
        c = self
        return Block(
            c.hook_id, c.ts[:n], c.port[:n], c.value[:n], c.vm[:n], c.vm_name[:n], c.vcpu[:n],
            c.cpu[:n], c.count[:n], c.flags[:n], c.seq[:n], c.rip[:rips], c.regs[:regs],
            c.reg_names,
        )  # fmt: skip

    def take(self, n: int) -> Block:
        """Remove the first ``n`` events and return them as a new block."""
        first = self.head(n)
        for col in self._columns():
            del col[:n]
        del self.rip[: len(first.rip)]
        del self.regs[: len(first.regs)]
        return first

    def events(self) -> list[Event]:
        """The events as records (``ioind local``, JSON batches, plain sinks: not a hot path)."""
        out = []
        columns = (*self._columns()[:-1], self.seq or [0] * len(self))  # 0: not numbered yet
        rips, regs, names = iter(self.rip), iter(self.regs), self.reg_names
        for ts, port, value, vm, name, vcpu, cpu, count, f, seq in zip(*columns, strict=True):
            ev = column_event(self.hook_id, ts, port, value, vm, name, vcpu, cpu, count, f, seq)
            if f & F_RIP:
                ev.rip = next(rips)
            if f & F_REGS:
                ev.regs = dict(zip(names, regs, strict=False))
            out.append(ev)
        return out
