"""The port-I/O bus (after firecracker's ``devices/src/bus.rs``).

Devices register port ranges; overlapping ranges are refused. A device sees accesses as an
*offset* into its range. Lookups are O(1): the bus keeps a 64 Ki-entry table from port to
``(device, offset)``. Ports nobody registered behave as an open ISA bus — IN reads all ones, OUT
is ignored — and are counted per port (``open_bus_reads`` / ``open_bus_writes``), never fatal.
"""

from __future__ import annotations

import array
from typing import Protocol

from agent.model import MAX_PORT

__all__ = ["BusDevice", "BusError", "PortBus"]

PORTS = MAX_PORT + 1
_ONES = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFF_FFFF}


class BusError(ValueError):
    """A registration the bus refuses (overlap, out of range)."""


class BusDevice(Protocol):
    """A port-mapped device; both calls get the offset in its range and the access size."""

    def read(self, offset: int, size: int) -> int: ...

    def write(self, offset: int, size: int, value: int) -> None: ...


class PortBus:
    """Port ranges → devices, plus open-bus counters."""

    def __init__(self) -> None:
        self._ranges: list[tuple[int, int, BusDevice]] = []  # (base, length, device)
        # port -> (device, offset) or None; a list beats a dict for dense int keys
        self.slots: list[tuple[BusDevice, int] | None] = [None] * PORTS
        # machine words (array 'Q'): the C fast path counts into the same memory
        self.open_bus_reads = array.array("Q", bytes(8 * PORTS))
        self.open_bus_writes = array.array("Q", bytes(8 * PORTS))

    def register(self, base: int, length: int, device: BusDevice, first_offset: int = 0) -> None:
        """Give ``device`` ports ``[base, base + length)``; ``BusError`` on overlap.

        The device sees offsets from ``first_offset`` (for a device whose ports are not
        contiguous, like the i8042's 0x60 and 0x64).
        """
        if length < 1 or base < 0 or base + length > PORTS:
            raise BusError(f"port range {base:#x}+{length} outside 0..{MAX_PORT:#x}")
        for b, n, dev in self._ranges:
            if base < b + n and b < base + length:
                raise BusError(
                    f"ports {base:#x}-{base + length - 1:#x} overlap {type(dev).__name__} "
                    f"at {b:#x}-{b + n - 1:#x}"
                )
        self._ranges.append((base, length, device))
        for i in range(length):
            self.slots[base + i] = (device, first_offset + i)

    def device_at(self, port: int) -> BusDevice | None:
        slot = self.slots[port]
        return None if slot is None else slot[0]

    def read(self, port: int, size: int) -> int:
        """IN: the device's value, or all ones (open bus, counted)."""
        slot = self.slots[port]
        if slot is None:
            self.open_bus_reads[port] += 1
            return _ONES[size]
        return slot[0].read(slot[1], size)

    def write(self, port: int, size: int, value: int) -> None:
        """OUT: to the device, or dropped (open bus, counted)."""
        slot = self.slots[port]
        if slot is None:
            self.open_bus_writes[port] += 1
        else:
            slot[0].write(slot[1], size, value)

    def open_bus_counts(self) -> dict[int, tuple[int, int]]:
        """Ports accessed without a device: port → (reads, writes)."""
        r, w = self.open_bus_reads, self.open_bus_writes
        return {p: (r[p], w[p]) for p in range(PORTS) if r[p] or w[p]}
