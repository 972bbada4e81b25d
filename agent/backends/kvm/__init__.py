"""The ``kvm`` backend: ioind as a small virtual-machine monitor on /dev/kvm.

It runs guest images (flat binaries in real, protected or long mode; firmware such as SeaBIOS)
and handles every port-I/O exit itself, so hooks can observe, change, skip and break on IN and
OUT like HyperDbg's ``!ioin`` / ``!ioout``. A hook's ``pid`` selects the VM (ids from 1),
``core`` the vCPU index. Layers, bottom up::

    _sys      ioctl numbers and ctypes structs (linux/kvm.h, asm/kvm.h)
    _kvm      Kvm → Vm → Vcpu, each owning its fd; Vcpu.run() → exits.* dataclasses
    memory    guest RAM / firmware mappings as KVM slots;  boot: modes, GDT, page tables
    bus       port ranges → devices, open bus counted;  devices/: UART, CMOS, PIT, i8042, PCI
    runner    one thread per vCPU (Running/Paused/Stopped), kicks, batched events
    hooks     stages, sc, set, break on a hooked exit;  decode: which instruction it was
    machine   one VM;  backend: the Backend Protocol over VMs
"""

from __future__ import annotations

from agent.backends.kvm.backend import KvmBackend
from agent.config import AgentConfig

__all__ = ["KvmBackend", "create"]


def create(config: AgentConfig) -> KvmBackend:
    """Create the backend from an ``AgentConfig`` (its ``kvm`` section)."""
    return KvmBackend(config.kvm)
