"""Everything one vCPU owns, in one object (firecracker's ``Vcpu`` state beside its loop).

A :class:`VcpuContext` is built by the VM for each vCPU and then touched only by that vCPU's
thread (``commands`` excepted: a thread-safe queue). The exit loops (:mod:`.loops`), the hook
path (:mod:`.hookpath`) and the other exits (:mod:`.slowexits`) are functions over it and keep no
state of their own; :class:`~.runner.VcpuRunner` drives them through its state machine.

Events collect in :attr:`VcpuContext.events` and reach the sink in batches (every
``FLUSH_EVENTS`` events or ``FLUSH_SECONDS``, and before the thread blocks): few, large
hand-offs, since each one costs the event loop a wake-up.
"""

from __future__ import annotations

import queue
import struct
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass

from agent.backends.kvm._kvm import Vcpu
from agent.backends.kvm.abi import Plan
from agent.backends.kvm.bus import PortBus
from agent.backends.kvm.commands import Breaks, Command
from agent.backends.kvm.devices.pic import Pic
from agent.backends.kvm.fast import FLUSH_NS, FastPath
from agent.backends.kvm.insns import InsnCache
from agent.backends.kvm.memory import GuestMemory
from agent.events import Event
from agent.hooks.table import HookTable
from agent.model import Direction
from agent.sink import EventSink

__all__ = ["FLUSH_EVENTS", "FLUSH_SECONDS", "BreakPoint", "Suspended", "VcpuContext"]

FLUSH_EVENTS = 2048  # events per batch at most
FLUSH_SECONDS = FLUSH_NS / 1e9  # the longest an event waits in a vCPU thread
MASK = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFF_FFFF}

FaultHandler = Callable[["VcpuContext", str, str], bool]
"""``(vcpu, kind, detail) -> keep_running``: the VM's policy for a guest fault."""


@dataclass(slots=True)
class BreakPoint:
    """A break hook fired: the event it made, and the fields of its ``break`` notice."""

    event: Event
    fields: dict[str, object]


@dataclass(slots=True)
class Suspended:
    """An exit halfway through its hooks, at ``at``: send the resume value (or None) to
    ``rest`` to finish it (it may stop at another break)."""

    rest: Generator[BreakPoint, int | None, None]
    at: BreakPoint
    break_id: str = ""
    deadline: float = 0.0
    grace: bool = False  # resume() won the race with the timeout: its command is on its way


class VcpuContext:
    """The per-vCPU state; see the module docstring."""

    def __init__(
        self, vcpu: Vcpu, *, bus: PortBus, memory: GuestMemory, insns: InsnCache,
        table: HookTable | None, sink: EventSink, breaks: Breaks, vm_id: int, vm_name: str,
        break_timeout: float, on_fault: FaultHandler, flood_limit: float | None = None,
    ) -> None:  # fmt: skip
        self.vcpu, self.index = vcpu, vcpu.index
        self.bus, self.memory, self.insns = bus, memory, insns
        # not `table or ...`: an empty HookTable is falsy (it has __len__)
        self.table = table if table is not None else HookTable()
        self.sink, self.breaks = sink, breaks
        self.vm_id, self.vm_name = vm_id, vm_name
        self.break_timeout = break_timeout
        self.on_fault = on_fault
        self.flood_limit = flood_limit  # exits per second counted as a flood (None: never)
        self.fast: FastPath | None = None  # the C loop, set before the thread starts
        self.pic: Pic | None = None  # the interrupt controller this vCPU takes IRQs from
        # queue.Queue, not SimpleQueue: CPython 3.11's SimpleQueue.get(timeout=...) interrupted by
        # a signal (our kick) near its deadline waits forever (a negative timeout)
        self.commands: queue.Queue[Command] = queue.Queue()
        self.reason = ""  # why the vCPU halted or failed
        self.version = -1  # the table version ``plans`` (and the C plan bytes) belong to
        self.plans: dict[int, Plan] = {}  # port | is_in << 16 -> Plan
        self.py_exits = 0  # exits counted by the Python loop
        self.other_exits = 0  # exits other than port I/O
        self.slow_exits = 0  # exits the C loop handed to Python
        self.suspended: Suspended | None = None  # the exit paused at a break
        # the hook path's memory: the last exit's registers as a tuple and as the dict events
        # share, and its instruction-cache key
        self.last_regs: tuple[int, ...] = ()
        self.last_map: dict[str, int] = {}
        self.last_key: tuple[int, tuple[int, ...], int] | None = None
        self.events: list[Event] = []
        self.pending_since = 0.0  # monotonic time of the oldest unflushed event (0: none)
        self.first_ts = 0  # its Event.ts: the hot path compares timestamps it already has

    # -- plans -------------------------------------------------------------------------------

    def ports(self) -> tuple[frozenset[int] | None, frozenset[int] | None]:
        """Ports worth a ``match`` per direction, IN then OUT (None: every port)."""
        return self.table.hooked_ports(Direction.IN), self.table.hooked_ports(Direction.OUT)

    def plan(self, is_in: bool, port: int) -> Plan:
        """The rules of this access (cached until the table changes)."""
        key = port | is_in << 16
        plan = self.plans.get(key)
        if plan is None:
            direction = Direction.IN if is_in else Direction.OUT
            rules = self.table.match(direction, port, self.vm_id, self.index)
            plan = self.plans[key] = Plan(rules)
        return plan

    # -- the data area and the bus -----------------------------------------------------------

    def emulate_in(self, size: int, port: int, count: int, off: int) -> list[int]:
        """Read ``count`` elements from the bus into the data area; returns them."""
        if count == 1:
            value = self.bus.read(port, size) & MASK[size]
            self.vcpu.run_map[off : off + size] = value.to_bytes(size, "little")
            return [value]
        values = [self.bus.read(port, size) & MASK[size] for _ in range(count)]
        self.put_values(size, off, values)
        return values

    def emulate_out(self, size: int, port: int, count: int, off: int) -> None:
        """Write the data area's ``count`` elements to the bus."""
        for value in self.get_values(size, count, off):
            self.bus.write(port, size, value)

    def get_values(self, size: int, count: int, off: int) -> list[int]:
        if count == 1:
            return [int.from_bytes(self.vcpu.run_map[off : off + size], "little")]
        return list(struct.unpack_from(f"<{count}{'BHxI'[size - 1]}", self.vcpu.run_map, off))

    def put_values(self, size: int, off: int, values: list[int]) -> None:
        fmt = f"<{len(values)}{'BHxI'[size - 1]}"
        struct.pack_into(fmt, self.vcpu.run_map, off, *(v & MASK[size] for v in values))

    def inject(self) -> bool:
        """Inject the PIC's pending interrupt if the guest can take it (else request a window)."""
        pic = self.pic
        vector = pic.pending_vector() if pic is not None else None
        run = self.vcpu.kvm_run
        if pic is None or vector is None:
            run.request_interrupt_window = 0
            return False
        if run.ready_for_interrupt_injection and run.if_flag:
            self.vcpu.interrupt(vector)
            pic.ack(vector)
            run.request_interrupt_window = 0
            return True
        run.request_interrupt_window = 1  # KVM exits with IRQ_WINDOW_OPEN when it can
        return False

    # -- counters ----------------------------------------------------------------------------

    @property
    def exits(self) -> int:
        return int(self.fast.state.exits) if self.fast is not None else self.py_exits

    @property
    def io_exits(self) -> int:
        return self.exits - self.other_exits

    # -- events ------------------------------------------------------------------------------

    def add_event(self, event: Event) -> None:
        if not self.events:
            self.batch_started(event.ts)
        self.events.append(event)
        self.events_added(event.ts)

    def batch_started(self, ts: int) -> None:
        """The first event of a batch (stamped ``ts``) is about to join :attr:`events`."""
        self.pending_since = time.monotonic()
        self.first_ts = ts

    def events_added(self, ts: int) -> None:
        """Events stamped ``ts`` joined :attr:`events`: flush if the batch is full or old."""
        if len(self.events) >= FLUSH_EVENTS or ts - self.first_ts >= FLUSH_NS:
            self.flush()

    def flush(self) -> None:
        """Hand buffered events to the sink (one call per batch): the Python path's, then the
        C ring's (which holds the later accesses)."""
        if self.events:
            batch, self.events = self.events, []
            self.pending_since = 0.0
            self.sink.events(batch)
        fast = self.fast
        if fast is not None and fast.state.n:
            blocks = fast.blocks(self.plans, self.vm_id, self.vm_name, self.index)
            if blocks:
                self.sink.blocks(blocks)

    def stale(self, now: float, older_than: float) -> bool:
        """True if events have waited in this thread longer than ``older_than`` seconds."""
        since = self.pending_since
        if since and now - since > older_than:
            return True
        fast = self.fast
        if fast is None or not fast.state.n:
            return False
        return bool(time.time_ns() - fast.state.first_ts > older_than * 1e9)
