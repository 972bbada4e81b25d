"""The emulated PC devices of the ``kvm`` backend and :func:`attach_pc_devices`, which puts the
standard set on a :class:`~agent.backends.kvm.bus.PortBus`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agent.backends.kvm.bus import PortBus
from agent.backends.kvm.devices.cmos import CMOS_PORT, Cmos
from agent.backends.kvm.devices.console import COM1, DEBUG_PORT, DebugCon, Uart16550
from agent.backends.kvm.devices.i8042 import I8042, I8042_DATA, I8042_STATUS
from agent.backends.kvm.devices.pci import PCI_ADDR, PciConfig
from agent.backends.kvm.devices.pic import PIC_MASTER, PIC_SLAVE, Pic
from agent.backends.kvm.devices.pit import PIT_PORT, PORT_61, Pit, SystemControl

__all__ = ["Latch", "PcDevices", "attach_pc_devices"]

PORT_92 = 0x92  # "system control port A" (fast A20 gate; bit 0 would reset: ignored)


class Latch:
    """A register that stores what is written and reads it back (port 0x92, PIC masks...)."""

    def __init__(self, value: int = 0) -> None:
        self.value = value

    def read(self, offset: int, size: int) -> int:
        return self.value

    def write(self, offset: int, size: int, value: int) -> None:
        self.value = value & 0xFF


@dataclass(frozen=True)
class PcDevices:
    uart: Uart16550
    debugcon: DebugCon
    cmos: Cmos
    pit: Pit
    i8042: I8042
    pci: PciConfig
    pic: Pic

    def flush(self) -> None:
        """Emit unterminated console lines (when the VM stops)."""
        self.uart.out.flush()
        self.debugcon.out.flush()


def attach_pc_devices(
    bus: PortBus, console: Callable[[str, str], None], mem_bytes: int, vcpus: int
) -> PcDevices:
    """Register UART, debug port, CMOS, PIT, port 0x61, i8042, port 0x92, PCI, PICs on ``bus``;
    ``console(device, line)`` receives console output."""
    pit = Pit()
    devs = PcDevices(
        uart=Uart16550(lambda line: console("uart", line)),
        debugcon=DebugCon(lambda line: console("debugcon", line)),
        cmos=Cmos(mem_bytes, vcpus),
        pit=pit,
        i8042=I8042(),
        pci=PciConfig(),
        pic=Pic(),
    )
    bus.register(COM1, 8, devs.uart)
    bus.register(DEBUG_PORT, 1, devs.debugcon)
    bus.register(CMOS_PORT, 2, devs.cmos)
    bus.register(PIT_PORT, 4, pit)
    bus.register(PORT_61, 1, SystemControl(pit))
    bus.register(I8042_DATA, 1, devs.i8042)
    bus.register(I8042_STATUS, 1, devs.i8042, first_offset=4)
    bus.register(PORT_92, 1, Latch(0x02))  # A20 on
    bus.register(PCI_ADDR, 8, devs.pci)
    bus.register(PIC_MASTER, 2, devs.pic)
    bus.register(PIC_SLAVE, 2, devs.pic, first_offset=2)
    return devs
