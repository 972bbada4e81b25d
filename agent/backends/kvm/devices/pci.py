"""PCI configuration mechanism #1 (0xCF8 address, 0xCFC-0xCFF data) with an i440FX host bridge
at 00:00.0 and a PIIX3 PCI-to-ISA bridge at 00:01.0 — the two functions SeaBIOS needs to
recognise a QEMU "pc" machine (it checks the host bridge's ids and its QEMU subsystem ids).

Config space is 256 bytes per function, writable except the identity registers; absent functions
read all ones. PAM registers are stored but do not remap memory (the VMM keeps 0xE0000-0xFFFFF
writable RAM from the start). Layout: PCI Local Bus Specification 3.0, 6.1; ids: QEMU hw/pci-host.
"""

from __future__ import annotations

import struct

__all__ = ["PCI_ADDR", "PciConfig", "PciFunction"]

PCI_ADDR = 0xCF8  # CONFIG_ADDRESS; CONFIG_DATA is 0xCFC
ENABLE = 0x8000_0000  # CONFIG_ADDRESS bit 31
READONLY = frozenset((*range(0x04), *range(0x10, 0x28), *range(0x30, 0x34)))  # ids, BARs, ROM:
# no BARs and no option ROM, so sizing them reads 0 ("not implemented", PCI 3.0, 6.2.5.1)
QEMU_SUBSYSTEM = (0x1AF4, 0x1100)  # Red Hat / "QEMU virtual machine", what SeaBIOS looks for


class PciFunction:
    """One function's 256-byte configuration space."""

    def __init__(self, vendor: int, device: int, class_code: int, header: int = 0) -> None:
        self.space = bytearray(256)
        struct.pack_into("<HH", self.space, 0x00, vendor, device)
        struct.pack_into("<I", self.space, 0x08, class_code << 8)  # revision 0 in the low byte
        self.space[0x0E] = header
        struct.pack_into("<HH", self.space, 0x2C, *QEMU_SUBSYSTEM)

    def read(self, offset: int, size: int) -> int:
        return int.from_bytes(self.space[offset : offset + size], "little")

    def write(self, offset: int, size: int, value: int) -> None:
        for i in range(size):
            if offset + i not in READONLY and offset + i < 256:
                self.space[offset + i] = (value >> (8 * i)) & 0xFF


def i440fx() -> PciFunction:
    return PciFunction(0x8086, 0x1237, 0x0600)  # Intel 82441FX PMC, class host bridge


def piix3() -> PciFunction:
    return PciFunction(0x8086, 0x7000, 0x0601, header=0x80)  # 82371SB ISA bridge, multifunction


class PciConfig:
    """Ports 0xCF8-0xCFF: the address register (offsets 0-3) and the data window (4-7)."""

    def __init__(self) -> None:
        self.address = 0
        self.functions: dict[tuple[int, int, int], PciFunction] = {
            (0, 0, 0): i440fx(),
            (0, 1, 0): piix3(),
        }

    def _target(self, data_offset: int) -> tuple[PciFunction | None, int]:
        a = self.address
        if not a & ENABLE:
            return None, 0
        bdf = ((a >> 16) & 0xFF, (a >> 11) & 0x1F, (a >> 8) & 0x7)
        return self.functions.get(bdf), (a & 0xFC) + data_offset

    def read(self, offset: int, size: int) -> int:
        if offset < 4:
            return (self.address >> (8 * offset)) & ((1 << (8 * size)) - 1)
        fn, reg = self._target(offset - 4)
        if fn is None:
            return (1 << (8 * size)) - 1
        return fn.read(reg, size)

    def write(self, offset: int, size: int, value: int) -> None:
        if offset < 4:
            if offset == 0 and size == 4:
                self.address = value & 0x80FF_FFFC
            return  # byte writes to 0xCF9 are the PIIX reset register: ignored
        fn, reg = self._target(offset - 4)
        if fn is not None:
            fn.write(reg, size, value)
