"""Turning parsed ring-buffer records into :class:`~agent.events.Event` batches (reader threads).

A record is ``(ts, common_type, common_pid, rw, port, size, count, val)`` (``PIO_FIELDS``). The
kernel filter only narrowed the stream; here each record is matched exactly with
``HookTable.match(dir, port, vm_pid, host_cpu)`` and yields one event per matching hook whose
``condition { }`` holds (``@rax`` is the value: the tracepoint has no registers), with what its
``script { }`` printed (scripts that change anything are refused at SetHook: observe only).

Timestamps: the instance's ``trace_clock`` is ``mono`` (``ktime_get_mono_fast_ns``, i.e.
CLOCK_MONOTONIC; Documentation/trace/ftrace.rst, "trace_clock"), so wall-clock ns is the record's
ts plus ``time.time_ns() - time.monotonic_ns()``, an offset re-sampled every second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from agent.backends.kvm_trace.procs import ProcMap, ThreadInfo
from agent.backends.kvm_trace.ringbuf import RawPage
from agent.events import Event
from agent.hooks.table import HookRule, HookTable
from agent.model import Direction
from agent.script.hit import Hit, run_hit

__all__ = ["Converter", "CpuCounts", "clock_offset"]

_DIRS = (Direction.IN, Direction.OUT)  # kvm_pio rw: 0 = IN (read), 1 = OUT (write)
_MASK = {1: 0xFF, 2: 0xFFFF}


def clock_offset() -> int:
    """ns to add to a CLOCK_MONOTONIC time stamp to get ns since the Unix epoch."""
    return time.time_ns() - time.monotonic_ns()


@dataclass(slots=True)
class CpuCounts:
    """Per-CPU counters, each written by one reader thread only."""

    records: int = 0
    events: int = 0
    missed_pages: int = 0
    lost: int = 0


@dataclass(slots=True)
class Converter:
    """Matches records against the table and builds events; one instance shared by the readers."""

    table: HookTable
    procs: ProcMap
    offset: int = field(default_factory=clock_offset)

    def convert(self, cpu: int, pages: list[RawPage], counts: CpuCounts) -> tuple[list[Event], int]:
        """Events for ``pages`` read from ``cpu``'s buffer, and the number of events lost before."""
        events: list[Event] = []
        lost = 0
        match, thread, offset = self.table.match, self.procs.thread, self.offset
        seen: dict[tuple[int, int, int], tuple[list[HookRule], ThreadInfo]] = {}
        for page in pages:
            if page.missed:
                counts.missed_pages += 1
                lost += page.missed_count
            counts.records += len(page.records)
            for ts, _type, tid, rw, port, size, count, val in page.records:
                key = (tid, rw, port)
                hit = seen.get(key)  # one match per thread, direction and port per hand-over
                if hit is None:
                    info = thread(tid)
                    hit = seen[key] = (match(_DIRS[rw & 1], port, info.vm, cpu), info)
                rules, info = hit
                if not rules:
                    continue
                value = val & _MASK.get(size, 0xFFFFFFFF)
                for rule in rules:
                    output = ""
                    if rule.script is not None:  # the kernel filter was a superset: gate here
                        access = Hit(port, size, rw & 1 == 0, False, value, info.vm, info.vcpu,
                                     ts + offset, {"rax": value, "rdx": port})  # fmt: skip
                        verdict = run_hit(rule.script, access)
                        if not verdict.fire:
                            continue
                        output = verdict.output
                    # positional: Event's fields in order (hook_id .. cpu), cheaper than keywords
                    ev = Event(rule.id, ts + offset, rule.direction, port, size, count, count > 1,
                               False, value, (), info.vm, info.vm_name, info.vcpu, cpu)  # fmt: skip
                    ev.output = output
                    events.append(ev)
        counts.events += len(events)
        counts.lost += lost
        return events, lost
