"""Event batches: what travels in an EventBatch, and the columnar records behind it.

An EventBatch carries plain events as ``EventColumns`` (parallel packed arrays: encoding costs
tens of nanoseconds per field and event instead of microseconds per Event message) and the rest
as Event messages (see proto/ioin/v1/events.proto). :class:`~agent.columns.Block` is the
in-memory twin of the columns: plain events of one hook with no per-event object, the fast path
of the sim and the kvm C loop through the pipeline. :func:`pack_batch` builds a batch from
events or a block; :func:`batch_events` reads every event back, from both forms.
"""

from __future__ import annotations

from agent.columns import (
    F_OUT,
    F_POST,
    F_REGS,
    F_REP,
    F_RIP,
    F_SKIPPED,
    F_STRING,
    F_VALUE_SET,
    SIZE_SHIFT,
    Block,
    column_event,
)  # fmt: skip
from agent.events import Event, from_proto, to_proto
from agent.model import Direction, Stage
from agent.wire import events_pb2

__all__ = [  # Block and the flag bits re-exported from agent.columns (the contract's spelling)
    "F_OUT",
    "F_POST",
    "F_REGS",
    "F_REP",
    "F_RIP",
    "F_SKIPPED",
    "F_STRING",
    "F_VALUE_SET",
    "Block",
    "batch_events",
    "batch_size",
    "is_plain",
    "pack_batch",
    "pack_block",
    "pack_columns",
    "unpack_columns",
]

OUT, POST = Direction.OUT, Stage.POST


def is_plain(ev: Event, reg_names: tuple[str, ...] = ()) -> bool:
    """True if ``ev`` fits the columnar form: no string-I/O data, no break id, no script
    output, and registers (if any) named exactly ``reg_names``."""
    return not (ev.data or ev.break_id or ev.output) and (
        not ev.regs or tuple(ev.regs) == reg_names
    )


def _columnar(evs: list[Event]) -> tuple[list[Event], list[Event], tuple[str, ...]]:
    """Split a batch into (columnar, as messages, the shared register names)."""
    names = next((tuple(e.regs) for e in evs if e.regs and not e.data), ())
    checked: set[int] = set()  # register dicts (alive in evs, so ids are unique) with those names
    plain, rich = [], []
    for e in evs:
        if e.data or e.break_id or e.output:
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
            e.size << SIZE_SHIFT
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
        ev = column_event(hooks[h], ts, port, value, vm, names[name], vcpu, cpu, count, f, seq)
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
    if any(e.data or e.regs or e.break_id or e.output for e in evs):  # else: the cheapest case
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
