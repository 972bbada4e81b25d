"""The ``kvm`` backend: ioind as a small virtual-machine monitor on /dev/kvm.

It runs guest images (flat binaries in real, protected or long mode; firmware such as SeaBIOS)
and handles every port-I/O exit itself, so hooks can observe, change, skip and break on IN and
OUT like HyperDbg's ``!ioin`` / ``!ioout``. A hook's ``pid`` selects the VM (ids from 1),
``core`` the vCPU index. Layers, bottom up::

    _sys      ioctl numbers and ctypes structs (linux/kvm.h, asm/kvm.h)
    _kvm      Kvm → Vm → Vcpu, each owning its fd; Vcpu.run() → exits.* dataclasses
    memory    guest RAM / firmware mappings as KVM slots;  boot: modes, GDT, page tables
    bus       port ranges → devices, open bus counted;  devices/: UART, CMOS, PIT, i8042, PCI
    abi       the C fast path's structs and constants (checked at load) and the hook Plan
    fast      fastpath.c built and loaded: the C exit loop's Python half (plans, ring → blocks)
    commands  vCPU states and commands (Stop, Resume, Interrupt, Flush), pending breaks
    context   VcpuContext: all per-vCPU state (plans, event buffer, counters) in one object
    insns     the instruction behind an exit, decoded once per RIP (decode: the x86 bytes)
    hookpath  stages, sc, set, break on a hooked exit: functions over the context
    slowexits HLT, MMIO, interrupt windows, triple faults, floods: decoded exits, matched
    loops     the exit loops (C driver, pure Python) over the context
    runner    one thread per vCPU: a state machine (running, waiting, paused, halted, ...)
    machine   one VM;  backend: the Backend Protocol over VMs
"""

from __future__ import annotations

from agent.backends.kvm.backend import KvmBackend
from agent.config import AgentConfig

__all__ = ["KvmBackend", "create"]


def create(config: AgentConfig) -> KvmBackend:
    """Create the backend from an ``AgentConfig`` (its ``kvm`` section)."""
    return KvmBackend(config.kvm)
