"""Event batches: what travels in an EventBatch, and the columnar records behind it.

An EventBatch carries plain events as ``EventColumns`` (parallel packed arrays: encoding costs
tens of nanoseconds per field and event instead of microseconds per Event message) and the rest
as Event messages (see proto/ioin/v1/events.proto). :class:`Block` is the in-memory twin of the
columns: plain events of one hook with no per-event object, the sim's fast path through the
pipeline. :func:`pack_batch` builds a batch from events or a block; :func:`batch_events` reads
every event back, from both forms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Self

from agent.events import Event, from_proto, to_proto
from agent.model import Direction, Stage
from agent.wire import events_pb2

__all__ = [
    "F_OUT",
    "Block",
    "batch_events",
    "batch_size",
    "is_plain",
    "pack_batch",
    "pack_block",
    "pack_columns",
    "unpack_columns",
]

# Flag bits of EventColumns.flags (see proto/ioin/v1/events.proto).
F_OUT, F_POST, F_STRING, F_REP, F_SKIPPED, F_VALUE_SET = 1, 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8
F_RIP, F_REGS = 1 << 9, 1 << 10
_SIZE_SHIFT = 1
OUT, POST = Direction.OUT, Stage.POST


def is_plain(ev: Event, reg_names: tuple[str, ...] = ()) -> bool:
    """True if ``ev`` fits the columnar form: no string-I/O data, no break id, and registers
    (if any) named exactly ``reg_names``."""
    return not (ev.data or ev.break_id) and (not ev.regs or tuple(ev.regs) == reg_names)


def _columnar(evs: list[Event]) -> tuple[list[Event], list[Event], tuple[str, ...]]:
    """Split a batch into (columnar, as messages, the shared register names)."""
    names = next((tuple(e.regs) for e in evs if e.regs and not e.data), ())
    checked: set[int] = set()  # register dicts (alive in evs, so ids are unique) with those names
    plain, rich = [], []
    for e in evs:
        if e.data or e.break_id:
            rich.append(e)
            continue
        regs = e.regs
        if regs and id(regs) not in checked:
            if tuple(regs) != names:
                rich.append(e)
                continue
            checked.add(id(regs))
        plain.append(e)
    return plain, rich, names


def pack_columns(
    evs: list[Event], out: events_pb2.EventColumns, reg_names: tuple[str, ...] = ()
) -> None:
    """Fill ``out`` with plain events (:func:`is_plain`), one packed array per field."""
    hooks = {h: i for i, h in enumerate(dict.fromkeys([e.hook_id for e in evs]))}
    names = {n: i for i, n in enumerate(dict.fromkeys([e.vm_name for e in evs]))}
    out.hook_ids.extend(hooks)
    out.vm_names.extend(names)
    # batches are cut per hook: one hook id is the common case
    out.hook.extend([0] * len(evs) if len(hooks) == 1 else [hooks[e.hook_id] for e in evs])
    out.vm_name.extend([names[e.vm_name] for e in evs])
    out.seq.extend([e.seq for e in evs])
    out.ts.extend([e.ts for e in evs])
    out.port.extend([e.port for e in evs])
    out.value.extend([e.value for e in evs])
    out.vm.extend([e.vm for e in evs])
    out.vcpu.extend([e.vcpu for e in evs])
    out.cpu.extend([e.cpu for e in evs])
    out.count.extend([e.count for e in evs])
    out.flags.extend(
        [
            e.size << _SIZE_SHIFT
            | (F_OUT if e.dir is OUT else 0)
            | (F_POST if e.stage is POST else 0)
            | (F_STRING if e.string else 0)
            | (F_REP if e.rep else 0)
            | (F_SKIPPED if e.skipped else 0)
            | (0 if e.value_set is None else F_VALUE_SET)
            | (0 if e.rip is None else F_RIP)
            | (F_REGS if e.regs else 0)
            for e in evs
        ]
    )
    out.value_set.extend([e.value_set for e in evs if e.value_set is not None])
    out.rip.extend([e.rip for e in evs if e.rip is not None])
    if reg_names:
        out.reg_names.extend(reg_names)
        values: list[int] = []
        for e in evs:
            if e.regs:
                values.extend(e.regs.values())
        out.regs.extend(values)


def pack_block(block: Block, out: events_pb2.EventColumns) -> None:
    """Fill an empty ``out`` with a block: each column extends its packed array as it is."""
    n = len(block)
    names = {name: i for i, name in enumerate(dict.fromkeys(block.vm_name))}
    out.hook_ids.append(block.hook_id)
    out.vm_names.extend(names)
    out.hook.extend([0] * n)
    out.vm_name.extend(list(map(names.__getitem__, block.vm_name)))
    out.seq.extend(block.seq)
    out.ts.extend(block.ts)
    out.port.extend(block.port)
    out.value.extend(block.value)
    out.vm.extend(block.vm)
    out.vcpu.extend(block.vcpu)
    out.cpu.extend(block.cpu)
    out.count.extend(block.count)
    out.flags.extend(block.flags)
    out.rip.extend(block.rip)
    if block.regs:
        out.reg_names.extend(block.reg_names)
        out.regs.extend(block.regs)


def _event(
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
        size=(f >> _SIZE_SHIFT) & 7,
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


def unpack_columns(cols: events_pb2.EventColumns) -> list[Event]:
    """The events of a columnar block (``ValueError`` if its arrays do not fit together)."""
    hooks, names = list(cols.hook_ids), list(cols.vm_names)
    c = cols
    arrays = (
        c.seq,
        c.ts,
        c.hook,
        c.port,
        c.value,
        c.vm,
        c.vm_name,
        c.vcpu,
        c.cpu,
        c.count,
        c.flags,
    )
    if any(len(a) != len(cols.seq) for a in arrays):
        raise ValueError("EventColumns: arrays of different lengths")
    if any(h >= len(hooks) for h in cols.hook) or any(v >= len(names) for v in cols.vm_name):
        raise ValueError("EventColumns: a hook or vm_name index out of its table")
    if sum(1 for f in cols.flags if f & F_VALUE_SET) != len(cols.value_set):
        raise ValueError("EventColumns: value_set does not match the flags")
    if sum(1 for f in cols.flags if f & F_RIP) != len(cols.rip):
        raise ValueError("EventColumns: rip does not match the flags")
    reg_names = list(cols.reg_names)
    if sum(len(reg_names) for f in cols.flags if f & F_REGS) != len(cols.regs):
        raise ValueError("EventColumns: regs does not match the flags and reg_names")
    value_sets, rips, regs = iter(cols.value_set), iter(cols.rip), iter(cols.regs)
    out = []
    for seq, ts, h, port, value, vm, name, vcpu, cpu, count, f in zip(*arrays, strict=True):
        ev = _event(hooks[h], ts, port, value, vm, names[name], vcpu, cpu, count, f, seq)
        if f & F_VALUE_SET:
            ev.value_set = next(value_sets)
        if f & F_RIP:
            ev.rip = next(rips)
        if f & F_REGS:  # regs is one iterator over every event's values: take this event's share
            ev.regs = dict(zip(reg_names, regs, strict=False))
        out.append(ev)
    return out


def pack_batch(host: str, epoch: str, evs: list[Event] | Block) -> events_pb2.EventBatch:
    """An EventBatch: plain events in columns, the rest as Event messages."""
    batch = events_pb2.EventBatch(host=host, epoch=epoch)
    if isinstance(evs, Block):
        pack_block(evs, batch.columns)
        return batch
    plain: list[Event] = evs
    rich: list[Event] = []
    names: tuple[str, ...] = ()
    if any(e.data or e.regs or e.break_id for e in evs):  # else: the common, cheapest case
        plain, rich, names = _columnar(evs)
    add = batch.events.add
    for e in rich:
        to_proto(e, add())
    if plain:
        pack_columns(plain, batch.columns, names)
    return batch


def batch_events(batch: events_pb2.EventBatch) -> list[Event]:
    """Every event of a batch, from both forms, in sequence order."""
    evs = [from_proto(e) for e in batch.events] + unpack_columns(batch.columns)
    if batch.events and batch.HasField("columns"):
        evs.sort(key=lambda e: e.seq)
    return evs


def batch_size(batch: events_pb2.EventBatch) -> int:
    """How many events a batch carries (without decoding them)."""
    return len(batch.events) + len(batch.columns.seq)


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
            ev = _event(self.hook_id, ts, port, value, vm, name, vcpu, cpu, count, f, seq)
            if f & F_RIP:
                ev.rip = next(rips)
            if f & F_REGS:
                ev.regs = dict(zip(names, regs, strict=False))
            out.append(ev)
        return out
