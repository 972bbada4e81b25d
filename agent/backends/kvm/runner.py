"""The vCPU loop (after firecracker's ``vstate/vcpu.rs``): one named thread per vCPU.

State machine: ``running`` ⇄ ``paused`` (a break, or a pause command) → ``halted`` / ``stopped``
/ ``failed``. Other threads talk to a vCPU only through its command queue; :meth:`VcpuRunner.kick`
sets ``kvm_run.immediate_exit`` and sends SIGUSR1 (whose Python handler is a no-op) so a
``KVM_RUN`` in progress returns EINTR and the loop reads its commands.

Two loops, same semantics. With the C fast path (:mod:`.fast`, the default where a C compiler
exists), ``_fast_loop`` calls ``fastpath.c``'s loop, which runs ``KVM_RUN`` without the GIL and
answers open-bus ports and observe-only hooked accesses itself (those become per-hook
:class:`~agent.batch.Block` columns in :meth:`VcpuRunner.flush`); every other exit comes back here
and is handled as below. The C ring is drained before Python handles an exit that can make
events, so events keep their order. Without the fast path, ``_loop`` does all of it in Python.

The Python loop's hot path is the port-I/O exit with no matching hook: read the exit with one
``struct.unpack_from`` on the ``kvm_run`` mapping, look the port up in the bus's table, answer,
re-enter — no allocation, no register fetch. Only when the hook table has a rule for the port
does the loop hand the exit to :mod:`.hooks` (rules per port cached in :attr:`VcpuRunner.plans`
until the table changes). Events collect in a per-thread list and reach asyncio in batches
(every ``FLUSH_EVENTS`` events or ``FLUSH_SECONDS``, and before the thread blocks): few, large
hand-offs, since each one costs the event loop a wake-up.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import queue
import signal
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from agent.backends.kvm import _sys as S
from agent.backends.kvm._kvm import Vcpu
from agent.backends.kvm.bus import PortBus
from agent.backends.kvm.devices.pic import Pic
from agent.backends.kvm.exits import Hlt, Mmio, Unknown
from agent.backends.kvm.fast import P_HOOKED, P_OBSERVE, R_ERRNO, R_FLUSH, R_TICK
from agent.errors import AgentError, BackendError, KvmError
from agent.hooks.table import HookTable
from agent.sink import EventSink

if TYPE_CHECKING:
    from agent.backends.kvm.fast import FastPath
    from agent.backends.kvm.hooks import HookedIo, Plan
    from agent.events import Event

__all__ = [
    "Breaks",
    "Continue",
    "Flush",
    "Pause",
    "Resume",
    "Stop",
    "VcpuRunner",
    "VcpuState",
    "install_kick_handler",
]

KICK_SIGNAL = signal.SIGUSR1
FLUSH_EVENTS = 2048  # events per batch at most
FLUSH_SECONDS = 0.005  # the longest an event waits in a vCPU thread (while exits keep coming)
FLUSH_NS = int(FLUSH_SECONDS * 1e9)
HLT_WAIT_SECONDS = 0.01  # HLT with interrupts on: nothing will interrupt it; retry this often
FLOOD_WINDOW = 1 << 16  # exits between two flood checks
COUNT_EVERY = 0x3FF  # the loop publishes its exit counter every 1024 exits (and on slow paths)
LAPIC_BASE = 0xFEE0_0000  # default local APIC page (SDM vol. 3, 11.4.1): reads 0, writes dropped
_EXIT = struct.Struct("=I20xBBHIQ")  # kvm_run from offset 8: exit_reason, then io at 32
_ONES = {1: b"\xff", 2: b"\xff" * 2, 4: b"\xff" * 4}
_MASK = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFF_FFFF}


class VcpuState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    HALTED = "halted"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Stop:
    """End the loop (the thread exits)."""


@dataclass(frozen=True, slots=True)
class Pause:
    """Stop entering the guest until :class:`Continue`."""


@dataclass(frozen=True, slots=True)
class Continue:
    """Undo :class:`Pause`."""


@dataclass(frozen=True, slots=True)
class Resume:
    """Continue the vCPU paused by break ``break_id``; ``value`` overrides the access's value."""

    break_id: str
    value: int | None


@dataclass(frozen=True, slots=True)
class Interrupt:
    """An interrupt line was raised: inject it (or ask KVM for an interrupt window)."""


@dataclass(frozen=True, slots=True)
class Flush:
    """Hand buffered events to the event loop now."""


Command = Stop | Pause | Continue | Resume | Flush | Interrupt


class _Stopped(Exception):
    """Raised inside the loop when a Stop command arrives while it waits."""


class Breaks:
    """Pending breaks of a backend: break id → the runner paused by it (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, VcpuRunner] = {}
        self._next = 0

    def new(self, runner: VcpuRunner) -> str:
        with self._lock:
            self._next += 1
            break_id = f"k{self._next}"
            self._pending[break_id] = runner
        return break_id

    def take(self, break_id: str) -> VcpuRunner | None:
        """Remove and return the runner waiting on ``break_id`` (None if not pending)."""
        with self._lock:
            return self._pending.pop(break_id, None)

    def __len__(self) -> int:
        return len(self._pending)


def _noop(signum: int, frame: object) -> None:
    """The kick signal only has to interrupt KVM_RUN."""


def install_kick_handler() -> None:
    """Install the no-op SIGUSR1 handler (needs the main thread the first time)."""
    current = signal.getsignal(KICK_SIGNAL)
    if current is _noop:
        return
    if threading.current_thread() is not threading.main_thread():
        raise BackendError("the kvm backend must first be started from the main thread (SIGUSR1)")
    signal.signal(KICK_SIGNAL, _noop)


FaultHandler = Callable[["VcpuRunner", str, str], bool]
"""``(runner, kind, detail) -> keep_running``: the VM's policy for a guest fault."""


class VcpuRunner:
    """Runs one vCPU in its own thread; see the module docstring."""

    def __init__(
        self,
        vcpu: Vcpu,
        *,
        bus: PortBus,
        hooked: HookedIo,
        table: HookTable | None,
        outlet: EventSink,
        on_fault: FaultHandler,
        name: str,
        flood_limit: float | None = None,
    ) -> None:
        self.vcpu = vcpu
        self.index = vcpu.index
        self.bus = bus
        self.hooked = hooked
        self.table = table
        self.outlet = outlet
        self.on_fault = on_fault
        self.flood_limit = flood_limit  # exits per second counted as a flood (None: never)
        self.state = VcpuState.PAUSED
        self.reason = ""
        self._exits = 0
        self.fast: FastPath | None = None  # the C loop (see fast.py), set before start()
        self.other_exits = 0  # exits other than port I/O (io exits = exits - other_exits)
        self.slow_exits = 0  # exits the C fast path handed to Python (fast.py)
        # queue.Queue, not SimpleQueue: CPython 3.11's SimpleQueue.get(timeout=...) interrupted by
        # a signal (our kick) near its deadline waits forever (a negative timeout); Queue's
        # Condition recomputes the deadline correctly
        self.commands: queue.Queue[Command] = queue.Queue()
        self.events: list[Event] = []
        self.pending_since = 0.0  # monotonic time of the oldest unflushed event (0: none)
        self._first_ts = 0  # its Event.ts: the hot path compares timestamps it already has
        self.plans: dict[int, Plan] = {}  # hooks.HookedIo.plan's cache, per table version
        # the hook path's per-thread memory (hooks.HookedIo.io): the last exit's registers as a
        # tuple and as the dict events share, and its instruction key
        self.last_regs: tuple[int, ...] = ()
        self.last_map: dict[str, int] = {}
        self.last_key: tuple[int, tuple[int, ...], int] | None = None
        self.pic: Pic | None = None  # the interrupt controller this vCPU takes IRQs from
        self._paused = False
        self._alive = False
        self._kick_lock = threading.Lock()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    # -- control (any thread) ----------------------------------------------------------------

    def start(self) -> None:
        self.state = VcpuState.RUNNING
        self._alive = True
        self._thread.start()

    def send(self, command: Command, *, kick: bool = True) -> None:
        """Queue a command; ``kick`` interrupts a running KVM_RUN so it is seen at once."""
        self.commands.put(command)
        if kick:
            self.kick()

    def kick(self) -> None:
        """immediate_exit + SIGUSR1: KVM_RUN returns EINTR now or on its next entry."""
        with self._kick_lock:
            if not self._alive:
                return
            self.vcpu.kvm_run.immediate_exit = 1
            ident = self._thread.ident
            if ident is not None:
                signal.pthread_kill(ident, KICK_SIGNAL)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True if it did."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- the thread --------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            if self.fast is not None:
                self._fast_loop(self.fast)
            else:
                self._loop()
        except _Stopped:
            if self.state not in (VcpuState.HALTED, VcpuState.FAILED):
                self.state = VcpuState.STOPPED
        except AgentError as e:
            self._fail("backend-error", str(e))
        except Exception as e:  # a bug must not take the agent down; report it
            self._fail("backend-error", f"{type(e).__name__}: {e}")
        finally:
            self.flush()
            with self._kick_lock:
                self._alive = False

    def _fail(self, kind: str, detail: str) -> None:
        self.state, self.reason = VcpuState.FAILED, detail
        with contextlib.suppress(Exception):
            self.on_fault(self, kind, detail)

    def _loop(self) -> None:
        fd, run_ioctl, kvm_run_req = self.vcpu.fd, S.run_ioctl, S.KVM_RUN
        run_map, unpack = self.vcpu.run_map, _EXIT.unpack_from
        slots, ob_reads, ob_writes = (
            self.bus.slots,
            self.bus.open_bus_reads,
            self.bus.open_bus_writes,
        )
        # not `self.table or ...`: an empty HookTable is falsy (it has __len__)
        table = self.table if self.table is not None else HookTable()
        hooked = self.hooked
        version = -1
        in_ports: frozenset[int] | None = frozenset()
        out_ports: frozenset[int] | None = frozenset()
        exits = 0
        window_start = time.monotonic()
        while True:
            if run_ioctl(fd, kvm_run_req, 0) < 0:
                self._exits = exits
                self._interrupted(ctypes.get_errno())
                continue
            exits += 1
            reason, d, size, port, count, off = unpack(run_map, 8)
            if reason != S.EXIT_IO:
                self._exits = exits
                self._other_exit(reason)
                continue
            if table.version != version:
                version = table.version
                in_ports, out_ports = hooked.ports(table)
                self.plans = {}
            if d == S.EXIT_IO_IN:
                if in_ports is None or port in in_ports:
                    hooked.io(self, True, size, port, count, off)
                elif count == 1:
                    slot = slots[port]
                    if slot is None:
                        ob_reads[port] += 1
                        run_map[off : off + size] = _ONES[size]
                    else:
                        value = slot[0].read(slot[1], size) & _MASK[size]
                        run_map[off : off + size] = value.to_bytes(size, "little")
                else:
                    self.emulate_in(size, port, count, off)
            elif out_ports is None or port in out_ports:
                hooked.io(self, False, size, port, count, off)
            elif count == 1:
                slot = slots[port]
                if slot is None:
                    ob_writes[port] += 1
                else:
                    value = int.from_bytes(run_map[off : off + size], "little")
                    slot[0].write(slot[1], size, value)
            else:
                self.emulate_out(size, port, count, off)
            if not exits & COUNT_EVERY:  # publish the counter now and then, not per exit
                self._exits = exits
                if not exits % FLOOD_WINDOW:
                    window_start = self._flood_check(window_start)

    def _fast_loop(self, fast: FastPath) -> None:
        """The loop with the C fast path: Python sees only the exits C hands up (fast.py)."""
        st, run, unpack, run_map = fast.state, fast.run, _EXIT.unpack_from, self.vcpu.run_map
        table = self.table if self.table is not None else HookTable()
        hooked, slots = self.hooked, self.bus.slots
        fast.rebase()
        version = -1
        window_start, window_exits = time.monotonic(), 0
        while True:
            if table.version != version:
                self.flush()  # the ring was recorded under the old plans
                version = table.version
                self._replan(fast, table)
            ret = run()
            if ret == R_FLUSH:
                self.flush()
                continue
            if ret == R_TICK:
                if st.exits - window_exits >= FLOOD_WINDOW:
                    window_exits = st.exits
                    window_start = self._flood_check(window_start)
                continue
            if ret == R_ERRNO:
                self._interrupted(st.err)
                continue
            self.slow_exits += 1
            reason, d, size, port, count, off = unpack(run_map, 8)
            if reason != S.EXIT_IO:
                self._other_exit(reason)
                continue
            is_in = d == S.EXIT_IO_IN
            key = port | is_in << 16
            planned = fast.planned(key)
            if planned != P_OBSERVE and planned != P_HOOKED:
                if is_in:  # a device
                    self.emulate_in(size, port, count, off)
                else:
                    self.emulate_out(size, port, count, off)
                continue
            if st.n:
                self.flush()  # keep event order: what C recorded came first
            self.last_key = None
            hooked.io(self, is_in, size, port, count, off)
            plan = self.plans.get(key)
            if plan is None:
                continue
            if planned == P_HOOKED:
                fast.resolve(key, plan)  # a lazily planned port (`!ioin all`)
            last = self.last_key
            if count == 1 and last is not None and fast.planned(key) == P_OBSERVE:
                cached = hooked.cached_code(last)
                if cached is not None and slots[port] is None:
                    fast.install(last[0], last[1], last[2], *cached)

    def _replan(self, fast: FastPath, table: HookTable) -> None:
        """A new table: plans for every hooked port now (or lazily for "all ports")."""
        self.plans = {}
        lazy: set[int] = set()
        plans: dict[int, Plan] = {}
        for is_in, ports in zip((True, False), self.hooked.ports(table), strict=True):
            if ports is None:
                lazy.add(int(is_in))
                continue
            for port in ports:
                plans[port | is_in << 16] = self.hooked.plan(self, is_in, port)
        fast.replan(plans, lazy)

    # -- emulation helpers (also used by the hook path) --------------------------------------

    def emulate_in(self, size: int, port: int, count: int, off: int) -> list[int]:
        """Read ``count`` elements from the bus into the data area; returns them."""
        if count == 1:
            value = self.bus.read(port, size) & _MASK[size]
            self.vcpu.run_map[off : off + size] = value.to_bytes(size, "little")
            return [value]
        values = [self.bus.read(port, size) & _MASK[size] for _ in range(count)]
        self.put_values(size, off, values)
        return values

    def emulate_out(self, size: int, port: int, count: int, off: int) -> None:
        """Write the data area's ``count`` elements to the bus."""
        if count == 1:
            value = int.from_bytes(self.vcpu.run_map[off : off + size], "little")
            self.bus.write(port, size, value)
            return
        for value in self.get_values(size, count, off):
            self.bus.write(port, size, value)

    def get_values(self, size: int, count: int, off: int) -> list[int]:
        if count == 1:
            return [int.from_bytes(self.vcpu.run_map[off : off + size], "little")]
        return list(struct.unpack_from(f"<{count}{'BHxI'[size - 1]}", self.vcpu.run_map, off))

    def put_values(self, size: int, off: int, values: list[int]) -> None:
        fmt = f"<{len(values)}{'BHxI'[size - 1]}"
        struct.pack_into(fmt, self.vcpu.run_map, off, *(v & _MASK[size] for v in values))

    # -- events ------------------------------------------------------------------------------

    @property
    def exits(self) -> int:
        return int(self.fast.state.exits) if self.fast is not None else self._exits

    @property
    def io_exits(self) -> int:
        return self.exits - self.other_exits

    def add_event(self, event: Event) -> None:
        if not self.events:
            self.batch_started(event.ts)
        self.events.append(event)
        self.events_added(event.ts)

    def batch_started(self, ts: int) -> None:
        """The first event of a batch (stamped ``ts``) is about to join :attr:`events`."""
        self.pending_since = time.monotonic()
        self._first_ts = ts

    def events_added(self, ts: int) -> None:
        """Events stamped ``ts`` joined :attr:`events`: flush if the batch is full or old."""
        if len(self.events) >= FLUSH_EVENTS or ts - self._first_ts >= FLUSH_NS:
            self.flush()

    def flush(self) -> None:
        """Hand buffered events to the outlet (one call per batch): the Python path's, then
        the C ring's (which holds the later accesses)."""
        if self.events:
            batch, self.events = self.events, []
            self.pending_since = 0.0
            self.outlet.events(batch)
        fast = self.fast
        if fast is not None and fast.state.n:
            hooked = self.hooked
            blocks = fast.blocks(self.plans, hooked.vm_id, hooked.vm_name, self.index)
            if blocks:
                self.outlet.blocks(blocks)

    def stale(self, now: float, older_than: float) -> bool:
        """True if events have waited in this thread longer than ``older_than`` seconds."""
        since = self.pending_since
        if since and now - since > older_than:
            return True
        fast = self.fast
        if fast is None or not fast.state.n:
            return False
        return bool(time.time_ns() - fast.state.first_ts > older_than * 1e9)

    # -- waiting and commands ----------------------------------------------------------------

    def _interrupted(self, err: int) -> None:
        if err not in (errno.EINTR, errno.EAGAIN):
            raise KvmError("KVM_RUN", err)
        self.vcpu.kvm_run.immediate_exit = 0  # before reading commands: a later kick re-arms it
        self.drain()

    def drain(self) -> None:
        """Run every queued command; block while paused."""
        while True:
            try:
                command = self.commands.get(block=self._paused)
            except queue.Empty:
                return
            self._apply(command)

    def _apply(self, command: Command) -> None:
        match command:
            case Stop():
                raise _Stopped
            case Pause():
                self.flush()
                self._paused, self.state = True, VcpuState.PAUSED
            case Continue():
                self._paused, self.state = False, VcpuState.RUNNING
            case Flush():
                self.flush()
            case Interrupt():
                self.inject()
            case Resume():
                pass  # a resume for a break that already timed out

    def inject(self) -> bool:
        """Inject the PIC's pending interrupt if the guest can take it (else request a window)."""
        vector = self.pic.pending_vector() if self.pic is not None else None
        run = self.vcpu.kvm_run
        if vector is None:
            run.request_interrupt_window = 0
            return False
        if run.ready_for_interrupt_injection and run.if_flag:
            self.vcpu.interrupt(vector)
            self.pic.ack(vector)  # type: ignore[union-attr]
            run.request_interrupt_window = 0
            return True
        run.request_interrupt_window = 1  # KVM exits with IRQ_WINDOW_OPEN when it can
        return False

    def wait_break(self, break_id: str, timeout: float) -> tuple[bool, int | None]:
        """Block until ``Resume(break_id)`` or ``timeout``; (resumed, value). Stop still stops."""
        self.flush()
        previous, self.state = self.state, VcpuState.PAUSED
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    command = self.commands.get(timeout=max(deadline - time.monotonic(), 0))
                except queue.Empty:
                    return False, None
                if isinstance(command, Resume) and command.break_id == break_id:
                    return True, command.value
                self._apply(command)
        finally:
            self.state = previous if previous is not VcpuState.PAUSED else VcpuState.RUNNING

    def park(
        self, state: VcpuState, seconds: float | None, *, until_interrupt: bool = False
    ) -> None:
        """Wait for commands (halted vCPU): for ``seconds`` (None: no limit), or until an
        interrupt was injected (``until_interrupt``); Stop always ends the wait."""
        self.flush()
        self.state = state
        deadline = None if seconds is None else time.monotonic() + seconds
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            try:
                command = self.commands.get(timeout=remaining)
            except queue.Empty:
                break
            self._apply(command)
            if until_interrupt and isinstance(command, Interrupt):
                break
        self.state = VcpuState.RUNNING

    # -- other exits -------------------------------------------------------------------------

    def _other_exit(self, reason: int) -> None:
        self.other_exits += 1
        exit_ = self.vcpu.decode(reason)
        match exit_:
            case Hlt():
                self._halt()
            case Unknown(reason=S.EXIT_IRQ_WINDOW_OPEN):
                self.inject()
            case Mmio(addr=addr, length=length, is_write=is_write):
                self._mmio(addr, length, is_write)
            case _:
                if reason == S.EXIT_SHUTDOWN:
                    kind, detail = "triple-fault", "triple fault (KVM_EXIT_SHUTDOWN)"
                else:
                    kind, detail = "vm-exit", f"unexpected exit {exit_}"
                self.state, self.reason = VcpuState.FAILED, detail
                self.on_fault(self, kind, detail)
                raise _Stopped

    def _halt(self) -> None:
        if self.vcpu.kvm_run.if_flag:
            if self.pic is not None and self.pic.chips[0].initialised:
                self.park(VcpuState.RUNNING, None, until_interrupt=True)  # the ticker wakes it
            else:
                self.park(VcpuState.RUNNING, HLT_WAIT_SECONDS)  # no interrupt source: poll
            return
        self.reason = "HLT with interrupts disabled"
        keep = self.on_fault(self, "halted", self.reason)
        self.state = VcpuState.HALTED
        if not keep:
            self.flush()
            raise _Stopped
        self.park(VcpuState.HALTED, None)  # only Stop ends it

    def _mmio(self, addr: int, length: int, is_write: bool) -> None:
        found = self.hooked.memory.find(addr)
        if found is not None and found[0].readonly and is_write:
            return  # a write to ROM: dropped, as on hardware
        if LAPIC_BASE <= addr < LAPIC_BASE + 0x1000:
            if not is_write:  # firmware pokes the local APIC even when CPUID denies one
                self.vcpu.complete_mmio_read(bytes(length))
            return
        what = "write" if is_write else "read"
        detail = f"unmapped memory {what} of {length} bytes at {addr:#x}"
        if not self.on_fault(self, "unmapped-memory", detail):
            self.state, self.reason = VcpuState.FAILED, detail
            raise _Stopped
        if not is_write:
            self.vcpu.complete_mmio_read(b"\xff" * length)  # reads float high, like open bus

    def _flood_check(self, window_start: float) -> float:
        now = time.monotonic()
        if self.flood_limit is not None:
            rate = FLOOD_WINDOW / max(now - window_start, 1e-9)
            if rate > self.flood_limit and not self.on_fault(
                self, "io-flood", f"{rate:.0f} exits/s (limit {self.flood_limit:.0f})"
            ):
                self.state, self.reason = VcpuState.FAILED, "I/O flood"
                raise _Stopped
        return now
