"""What a vCPU thread is (its states) and what other threads may tell it (its commands).

A vCPU's state is one of :class:`VcpuState`; only :class:`~.runner.VcpuRunner` sets it, in one
place. Other threads talk to a vCPU only through its command queue (:class:`Stop`,
:class:`Resume`, :class:`Interrupt`, :class:`Flush`), after which they kick it: SIGUSR1, whose
handler (:func:`install_kick_handler`) does nothing but make a ``KVM_RUN`` in progress return
EINTR. :class:`Breaks` maps the id of each pending break to the vCPU paused by it.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from agent.errors import BackendError

__all__ = [
    "KICK_SIGNAL",
    "Breaks",
    "Command",
    "Flush",
    "Interrupt",
    "Resume",
    "Stop",
    "VcpuState",
    "install_kick_handler",
]

KICK_SIGNAL = signal.SIGUSR1


class VcpuState(StrEnum):
    RUNNING = "running"  # in the exit loop
    WAITING = "waiting"  # HLT with interrupts on: until an interrupt (or a poll interval)
    PAUSED = "paused"  # at a break, until resumed or the break timeout
    HALTED = "halted"  # HLT with interrupts off: nothing will wake it (final)
    STOPPED = "stopped"  # a Stop command (final)
    FAILED = "failed"  # a fault the policy does not keep, or a backend error (final)


@dataclass(frozen=True, slots=True)
class Stop:
    """End the thread."""


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


Command = Stop | Resume | Interrupt | Flush


class Commandable(Protocol):
    """What a pending break resumes: something that takes commands."""

    def send(self, command: Command, *, kick: bool = True) -> None: ...


class Breaks:
    """Pending breaks of a backend: break id → the vCPU paused by it (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, Commandable] = {}
        self._next = 0

    def new(self, vcpu: Commandable) -> str:
        with self._lock:
            self._next += 1
            break_id = f"k{self._next}"
            self._pending[break_id] = vcpu
        return break_id

    def take(self, break_id: str) -> Commandable | None:
        """Remove and return the vCPU waiting on ``break_id`` (None if not pending)."""
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
