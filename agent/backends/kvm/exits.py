"""Decoded VM exits: what :meth:`Vcpu.run <agent.backends.kvm._kvm.Vcpu.run>` returns.

One frozen dataclass per exit kind, in the spirit of rust-vmm's ``VcpuExit`` enum, so callers
dispatch with ``match``::

    match vcpu.run():
        case IoIn(port=port, size=size, count=count): ...
        case Hlt(): ...

Port-I/O exits carry ``data_offset``: where the ``size * count`` data bytes live inside the
vCPU's ``kvm_run`` mapping (linux/kvm.h ``kvm_run.io.data_offset``). For an IN the VMM writes
the bytes the guest reads there before the next ``KVM_RUN``; for an OUT they hold what it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Exit",
    "FailEntry",
    "Hlt",
    "InternalError",
    "Intr",
    "IoIn",
    "IoOut",
    "IrqWindowOpen",
    "Mmio",
    "Shutdown",
    "SystemEvent",
    "Unknown",
]


@dataclass(frozen=True, slots=True)
class IoIn:
    """KVM_EXIT_IO, direction IN: the guest reads ``count`` elements of ``size`` bytes."""

    port: int
    size: int
    count: int
    data_offset: int


@dataclass(frozen=True, slots=True)
class IoOut:
    """KVM_EXIT_IO, direction OUT: the guest wrote ``count`` elements of ``size`` bytes."""

    port: int
    size: int
    count: int
    data_offset: int


@dataclass(frozen=True, slots=True)
class Mmio:
    """KVM_EXIT_MMIO: an access to guest-physical memory no slot backs (or a read-only slot)."""

    addr: int
    length: int
    is_write: bool
    data: bytes  # what was written (``length`` bytes); zeros for a read


@dataclass(frozen=True, slots=True)
class Hlt:
    """KVM_EXIT_HLT: the guest executed HLT (only seen without an in-kernel irqchip)."""


@dataclass(frozen=True, slots=True)
class Shutdown:
    """KVM_EXIT_SHUTDOWN: triple fault (SDM vol. 3, 6.15 "double fault ... shutdown")."""


@dataclass(frozen=True, slots=True)
class FailEntry:
    """KVM_EXIT_FAIL_ENTRY: VM entry failed; ``reason`` is the hardware's (VMX exit reason)."""

    reason: int
    cpu: int


@dataclass(frozen=True, slots=True)
class InternalError:
    """KVM_EXIT_INTERNAL_ERROR: KVM could not handle the exit (e.g. emulation failure)."""

    suberror: int
    data: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Intr:
    """``KVM_RUN`` returned EINTR: a signal or ``immediate_exit`` (a kick) interrupted it."""


@dataclass(frozen=True, slots=True)
class IrqWindowOpen:
    """KVM_EXIT_IRQ_WINDOW_OPEN: the guest can take an interrupt now (asked for with
    ``kvm_run.request_interrupt_window``)."""


@dataclass(frozen=True, slots=True)
class SystemEvent:
    """KVM_EXIT_SYSTEM_EVENT: shutdown, reset or crash requested (``type``, linux/kvm.h
    ``KVM_SYSTEM_EVENT_*``), with its data words."""

    type: int
    data: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Unknown:
    """Any other exit reason (linux/kvm.h ``KVM_EXIT_*``), with the hardware reason if any."""

    reason: int
    hardware_reason: int = 0


Exit = (
    IoIn
    | IoOut
    | Mmio
    | Hlt
    | Shutdown
    | FailEntry
    | InternalError
    | Intr
    | IrqWindowOpen
    | SystemEvent
    | Unknown
)
