"""The vCPU thread (after firecracker's ``vstate/vcpu.rs``): one named thread per vCPU.

A state machine. Each state has a function that runs it and returns the next state (None: the
thread ends in the state it is in), and :meth:`VcpuRunner._enter` is the one place the state is
set::

    RUNNING ──HLT, IF=1──► WAITING ──interrupt / poll──► RUNNING
       │ ──break hook──► PAUSED ──resume / timeout──► RUNNING
       │ ──HLT, IF=0──► HALTED (parked until Stop if the policy keeps it)
       └──Stop──► STOPPED      any state ──fault / error──► FAILED

Other threads talk to a vCPU only through its command queue (:mod:`.commands`);
:meth:`VcpuRunner.kick` sets ``kvm_run.immediate_exit`` and sends SIGUSR1 (whose Python handler
is a no-op) so a ``KVM_RUN`` in progress returns EINTR and the loop reads its commands. The
per-vCPU state lives in :class:`~.context.VcpuContext`; the exit loops are :mod:`.loops`.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
import time

from agent.backends.kvm.commands import (
    KICK_SIGNAL,
    Command,
    Flush,
    Interrupt,
    Resume,
    Stop,
    VcpuState,
)  # fmt: skip
from agent.backends.kvm.context import Suspended, VcpuContext
from agent.backends.kvm.hookpath import advance
from agent.backends.kvm.loops import fast_loop, python_loop
from agent.backends.kvm.slowexits import HLT_WAIT_SECONDS
from agent.errors import AgentError
from agent.notices import Notice, NoticeKind

__all__ = ["VcpuRunner"]

RACE_GRACE_SECONDS = 1.0  # how long a resume that won the race with the timeout may take


class VcpuRunner:
    """Runs one vCPU in its own thread; see the module docstring."""

    state = VcpuState.RUNNING  # until the thread enters its first state (see _enter)

    def __init__(self, ctx: VcpuContext, *, name: str) -> None:
        self.ctx = ctx
        self.index = ctx.index
        self._alive = False
        self._kick_lock = threading.Lock()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    # -- control (any thread) ----------------------------------------------------------------

    def start(self) -> None:
        self._alive = True
        self._thread.start()

    def send(self, command: Command, *, kick: bool = True) -> None:
        """Queue a command; ``kick`` interrupts a running KVM_RUN so it is seen at once."""
        self.ctx.commands.put(command)
        if kick:
            self.kick()

    def kick(self) -> None:
        """immediate_exit + SIGUSR1: KVM_RUN returns EINTR now or on its next entry."""
        with self._kick_lock:
            if not self._alive:
                return
            self.ctx.vcpu.kvm_run.immediate_exit = 1
            ident = self._thread.ident
            if ident is not None:
                signal.pthread_kill(ident, KICK_SIGNAL)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True if it did."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def reason(self) -> str:
        return self.ctx.reason

    @property
    def exits(self) -> int:
        return self.ctx.exits

    @property
    def io_exits(self) -> int:
        return self.ctx.io_exits

    # -- the state machine (the vCPU thread) -------------------------------------------------

    def _main(self) -> None:
        if self.ctx.fast is not None:
            self.ctx.fast.rebase()  # the bus's devices as they are when the vCPU starts
        state: VcpuState | None = VcpuState.RUNNING
        try:
            while state is not None:
                state = self._enter(state)
        finally:
            self.ctx.flush()
            with self._kick_lock:
                self._alive = False

    def _enter(self, state: VcpuState) -> VcpuState | None:
        """Enter ``state`` (the only assignment of :attr:`state`) and run it to the next."""
        self.state = state
        try:
            match state:
                case VcpuState.RUNNING:
                    return self._running()
                case VcpuState.WAITING:
                    return self._waiting()
                case VcpuState.PAUSED:
                    return self._paused()
                case VcpuState.HALTED:
                    self._halted()
                    return None  # the thread ends halted
                case VcpuState.STOPPED | VcpuState.FAILED:
                    return None
        except AgentError as e:
            return self._fail(str(e))
        except Exception as e:  # a bug must not take the agent down; report it
            return self._fail(f"{type(e).__name__}: {e}")

    def _fail(self, detail: str) -> VcpuState:
        self.ctx.reason = detail
        with contextlib.suppress(Exception):
            self.ctx.on_fault(self.ctx, "backend-error", detail)
        return VcpuState.FAILED

    def _running(self) -> VcpuState | None:
        ctx = self.ctx
        while True:
            fast = ctx.fast
            next_state = python_loop(ctx) if fast is None else fast_loop(ctx, fast)
            if next_state is not None:
                return next_state
            # interrupted: clear immediate_exit before reading commands, so a later kick re-arms it
            ctx.vcpu.kvm_run.immediate_exit = 0
            next_state = self._drain()
            if next_state is not None:
                return next_state

    def _waiting(self) -> VcpuState | None:
        """HLT with interrupts on: until an interrupt is injected (the ticker's), or for the
        poll interval when nothing can interrupt."""
        ctx = self.ctx
        ctx.flush()
        pic = ctx.pic
        seconds = None if pic is not None and pic.chips[0].initialised else HLT_WAIT_SECONDS
        deadline = None if seconds is None else time.monotonic() + seconds
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return VcpuState.RUNNING
            try:
                command = ctx.commands.get(timeout=remaining)
            except queue.Empty:
                return VcpuState.RUNNING
            if isinstance(command, Stop):
                return VcpuState.STOPPED
            if isinstance(command, Interrupt):
                ctx.inject()
                return VcpuState.RUNNING
            self._command(command)

    def _paused(self) -> VcpuState | None:
        """At a break: until its Resume, or the break timeout (announced)."""
        ctx = self.ctx
        suspended = ctx.suspended
        assert suspended is not None
        if not suspended.break_id:
            self._announce(suspended)
        while True:
            try:
                remaining = max(suspended.deadline - time.monotonic(), 0)
                command = ctx.commands.get(timeout=remaining)
            except queue.Empty:
                if not suspended.grace and ctx.breaks.take(suspended.break_id) is None:
                    # resume() won the race with the timeout: its command is on its way
                    suspended.grace = True
                    suspended.deadline = time.monotonic() + RACE_GRACE_SECONDS
                    continue
                if not suspended.grace:
                    timeout = {**suspended.at.fields, "resumed": "timeout"}
                    ctx.sink.notice(Notice(NoticeKind.BREAK_TIMEOUT, timeout))
                return self._resume(None)
            if isinstance(command, Resume) and command.break_id == suspended.break_id:
                return self._resume(command.value)
            if isinstance(command, Stop):
                return VcpuState.STOPPED
            self._command(command)

    def _announce(self, suspended: Suspended) -> None:
        ctx = self.ctx
        break_id = ctx.breaks.new(self)
        suspended.break_id = suspended.at.event.break_id = break_id
        suspended.at.fields["break_id"] = break_id
        suspended.deadline = time.monotonic() + ctx.break_timeout
        ctx.flush()
        ctx.sink.notice(Notice(NoticeKind.BREAK, suspended.at.fields))

    def _resume(self, value: int | None) -> VcpuState:
        """Finish the suspended exit with ``value``: RUNNING, or PAUSED at its next break."""
        ctx = self.ctx
        assert ctx.suspended is not None
        ctx.suspended = advance(ctx.suspended.rest, value)
        return VcpuState.RUNNING if ctx.suspended is None else VcpuState.PAUSED

    def _halted(self) -> None:
        """HLT with interrupts off: announced; parked until Stop if the policy keeps it."""
        ctx = self.ctx
        keep = ctx.on_fault(ctx, "halted", ctx.reason)
        ctx.flush()
        while keep:  # only Stop ends it
            command = ctx.commands.get()
            if isinstance(command, Stop):
                break
            self._command(command)

    # -- commands ----------------------------------------------------------------------------

    def _drain(self) -> VcpuState | None:
        """Run every queued command (without blocking); STOPPED on Stop."""
        while True:
            try:
                command = self.ctx.commands.get_nowait()
            except queue.Empty:
                return None
            if isinstance(command, Stop):
                return VcpuState.STOPPED
            self._command(command)

    def _command(self, command: Command) -> None:
        match command:
            case Flush():
                self.ctx.flush()
            case Interrupt():
                self.ctx.inject()
            case Resume() | Stop():
                pass  # Resume: for a break that already timed out; Stop: the callers' own
