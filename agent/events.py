"""The event record: one hooked access, as backends produce it and the pipeline ships it.

Backends fill everything but ``seq`` (the pipeline numbers events gap-free per agent boot).
``to_json`` gives the JSON form with exactly the keys DESIGN.md names; ``to_proto`` the wire form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.model import Direction, Stage
from agent.wire import events_pb2

__all__ = ["JSON_KEYS", "Event", "from_json", "from_proto", "to_json", "to_proto"]

JSON_KEYS = (
    "host",
    "epoch",
    "seq",
    "ts",
    "hook_id",
    "dir",
    "port",
    "size",
    "count",
    "string",
    "rep",
    "value",
    "data",
    "vm",
    "vm_name",
    "vcpu",
    "cpu",
    "rip",
    "regs",
    "stage",
    "value_set",
    "skipped",
    "break_id",
    "output",
)


@dataclass(slots=True)
class Event:
    """One hooked access (one event per matching hook)."""

    hook_id: str
    ts: int  # ns since the Unix epoch
    dir: Direction
    port: int
    size: int = 1
    count: int = 1
    string: bool = False
    rep: bool = False
    value: int = 0
    data: tuple[int, ...] = ()
    vm: int = 0
    vm_name: str = ""
    vcpu: int = 0
    cpu: int = -1
    rip: int | None = None
    regs: Mapping[str, int] = field(default_factory=dict)
    stage: Stage = Stage.PRE
    value_set: int | None = None
    skipped: bool = False
    break_id: str = ""
    seq: int = 0
    output: str = ""  # what the hook's script printed (printf / print) at this hit


def to_json(ev: Event, host: str, epoch: str) -> dict[str, Any]:
    """The event's JSON object (keys in ``JSON_KEYS`` order)."""
    return {
        "host": host,
        "epoch": epoch,
        "seq": ev.seq,
        "ts": ev.ts,
        "hook_id": ev.hook_id,
        "dir": ev.dir.label,
        "port": ev.port,
        "size": ev.size,
        "count": ev.count,
        "string": ev.string,
        "rep": ev.rep,
        "value": ev.value,
        "data": list(ev.data),
        "vm": ev.vm,
        "vm_name": ev.vm_name,
        "vcpu": ev.vcpu,
        "cpu": ev.cpu,
        "rip": ev.rip,
        "regs": dict(ev.regs),
        "stage": ev.stage.label,
        "value_set": ev.value_set,
        "skipped": ev.skipped,
        "break_id": ev.break_id or None,
        "output": ev.output or None,
    }


def to_proto(ev: Event, out: events_pb2.Event) -> None:
    """Fill ``out`` (typically ``batch.events.add()``) from ``ev``."""
    out.seq = ev.seq
    out.ts = ev.ts
    out.hook_id = ev.hook_id
    out.dir = int(ev.dir)  # type: ignore[assignment]
    out.port = ev.port
    out.size = ev.size
    out.count = ev.count
    out.string = ev.string
    out.rep = ev.rep
    out.value = ev.value
    if ev.data:
        out.data.extend(ev.data)
    out.vm = ev.vm
    out.vm_name = ev.vm_name
    out.vcpu = ev.vcpu
    out.cpu = ev.cpu
    if ev.rip is not None:
        out.rip = ev.rip
    if ev.regs:
        out.regs.update(ev.regs)
    out.stage = int(ev.stage)  # type: ignore[assignment]
    if ev.value_set is not None:
        out.value_set = ev.value_set
    out.skipped = ev.skipped
    out.break_id = ev.break_id
    if ev.output:
        out.output = ev.output


def from_proto(msg: events_pb2.Event) -> Event:
    """Decode a wire event (consumers: ``ioinctl watch``, tests)."""
    return Event(
        hook_id=msg.hook_id,
        ts=msg.ts,
        dir=Direction(msg.dir),
        port=msg.port,
        size=msg.size,
        count=msg.count,
        string=msg.string,
        rep=msg.rep,
        value=msg.value,
        data=tuple(msg.data),
        vm=msg.vm,
        vm_name=msg.vm_name,
        vcpu=msg.vcpu,
        cpu=msg.cpu,
        rip=msg.rip if msg.HasField("rip") else None,
        regs=dict(msg.regs),
        stage=Stage(msg.stage or Stage.PRE),
        value_set=msg.value_set if msg.HasField("value_set") else None,
        skipped=msg.skipped,
        break_id=msg.break_id,
        seq=msg.seq,
        output=msg.output,
    )


def from_json(obj: Mapping[str, Any]) -> Event:
    """Decode an event's JSON object (``KeyError`` / ``ValueError`` / ``TypeError`` if bad)."""
    return Event(
        hook_id=str(obj["hook_id"]),
        ts=int(obj["ts"]),
        dir=Direction.IN if obj["dir"] == "in" else Direction.OUT,
        port=int(obj["port"]),
        size=int(obj["size"]),
        count=int(obj["count"]),
        string=bool(obj["string"]),
        rep=bool(obj["rep"]),
        value=int(obj["value"]),
        data=tuple(int(x) for x in obj["data"]),
        vm=int(obj["vm"]),
        vm_name=str(obj["vm_name"]),
        vcpu=int(obj["vcpu"]),
        cpu=int(obj["cpu"]),
        rip=None if obj["rip"] is None else int(obj["rip"]),
        regs={str(k): int(v) for k, v in obj["regs"].items()},
        stage=Stage[str(obj["stage"]).upper()],
        value_set=None if obj["value_set"] is None else int(obj["value_set"]),
        skipped=bool(obj["skipped"]),
        break_id=str(obj["break_id"] or ""),
        seq=int(obj["seq"]),
        output=str(obj.get("output") or ""),  # absent from agents older than scripts
    )
