"""Intel 8254 PIT at 0x40-0x43 and the PC's port 0x61 (speaker / channel-2 gate and OUT2).

Enough for firmware: counters count down at 1.193182 MHz from the moment their count is written,
derived from the host's monotonic clock (no interrupts are injected). Reads honour latch commands
and the LSB/MSB access modes; port 0x61 bit 5 shows channel 2's OUT, which SeaBIOS polls to
calibrate the TSC. Register map: Intel 8254 datasheet (231164); port 0x61: IBM PC/AT reference.
"""

from __future__ import annotations

import time

__all__ = ["PIT_FREQ_HZ", "PIT_PORT", "PORT_61", "Pit", "SystemControl"]

PIT_PORT = 0x40
PORT_61 = 0x61
PIT_FREQ_HZ = 1_193_182
ACCESS_LATCH, ACCESS_LSB, ACCESS_MSB, ACCESS_WORD = 0, 1, 2, 3  # control word bits 5-4
READ_BACK = 3  # control word bits 7-6 = 3: read-back command
P61_GATE2, P61_SPEAKER, P61_REFRESH, P61_OUT2 = 0x01, 0x02, 0x10, 0x20


class _Counter:
    def __init__(self) -> None:
        self.mode = 0
        self.access = ACCESS_WORD
        self.reload = 0x10000
        self.start = time.monotonic()
        self.latched: list[int] = []
        self.write_lsb: int | None = None
        self.read_msb_next = False

    def ticks(self) -> int:
        return int((time.monotonic() - self.start) * PIT_FREQ_HZ)

    def value(self) -> int:
        elapsed = self.ticks()
        if self.mode in (2, 3):  # periodic: rate generator / square wave
            return self.reload - (elapsed % self.reload)
        return (self.reload - elapsed) & 0xFFFF  # one-shot modes keep counting down, wrapping

    def out(self) -> bool:
        elapsed = self.ticks()
        if self.mode in (2, 3):
            return (elapsed % self.reload) < self.reload // 2
        return elapsed >= self.reload

    def load(self, count: int) -> None:
        self.reload = count or 0x10000  # a count of 0 means 65536
        self.start = time.monotonic()


class Pit:
    """Three counters; channel 2's gate comes from :class:`SystemControl`."""

    def __init__(self) -> None:
        self.counters = [_Counter() for _ in range(3)]

    def read(self, offset: int, size: int) -> int:
        if offset == 3:
            return 0xFF  # the control word register is write-only
        c = self.counters[offset]
        if c.latched:
            return c.latched.pop(0)
        value = c.value()
        if c.access == ACCESS_LSB:
            return value & 0xFF
        if c.access == ACCESS_MSB:
            return value >> 8 & 0xFF
        c.read_msb_next = not c.read_msb_next
        return value & 0xFF if c.read_msb_next else value >> 8 & 0xFF

    def write(self, offset: int, size: int, value: int) -> None:
        value &= 0xFF
        if offset < 3:
            self._write_count(self.counters[offset], value)
            return
        channel, access = value >> 6, (value >> 4) & 3
        if channel == READ_BACK:
            for i in range(3):
                if value & (2 << i) and not value & 0x20:  # COUNT bit is active low
                    v = self.counters[i].value()
                    self.counters[i].latched = [v & 0xFF, v >> 8 & 0xFF]
            return
        c = self.counters[channel]
        if access == ACCESS_LATCH:
            v = c.value()
            c.latched = [v & 0xFF, v >> 8 & 0xFF]
            if c.access in (ACCESS_LSB, ACCESS_MSB):
                c.latched = [c.latched[c.access - 1]]
            return
        c.access, c.mode = access, (value >> 1) & 7
        c.write_lsb, c.read_msb_next = None, False

    @staticmethod
    def _write_count(c: _Counter, value: int) -> None:
        if c.access == ACCESS_LSB:
            c.load(value)
        elif c.access == ACCESS_MSB:
            c.load(value << 8)
        elif c.write_lsb is None:
            c.write_lsb = value
        else:
            c.load(c.write_lsb | value << 8)
            c.write_lsb = None


class SystemControl:
    """Port 0x61: bits 0-1 writable (gate 2, speaker), bit 4 toggles, bit 5 is OUT2."""

    def __init__(self, pit: Pit) -> None:
        self.pit = pit
        self.value = 0
        self._refresh = False

    def read(self, offset: int, size: int) -> int:
        self._refresh = not self._refresh  # DRAM refresh toggles every ~15 us; firmware waits on it
        out2 = self.value & P61_GATE2 and self.pit.counters[2].out()
        return (self.value & 3) | (P61_REFRESH if self._refresh else 0) | (P61_OUT2 if out2 else 0)

    def write(self, offset: int, size: int, value: int) -> None:
        self.value = value & 3
