"""MC146818 CMOS/RTC at ports 0x70 (index, bit 7 = NMI mask) and 0x71 (data).

Time registers show the host's current UTC time, BCD unless the guest clears status register
B's DM bit; status A never reports an update in progress. The NVRAM holds the memory-size bytes
PC firmware (SeaBIOS, without fw_cfg) reads to size RAM. Register map: the MC146818A datasheet
and the IBM PC/AT CMOS layout (RBIL table C001).
"""

from __future__ import annotations

import time

__all__ = ["CMOS_PORT", "Cmos"]

CMOS_PORT = 0x70
SEC, MIN, HOUR, WDAY, MDAY, MONTH, YEAR = 0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09
REG_A, REG_B, REG_C, REG_D = 0x0A, 0x0B, 0x0C, 0x0D
CENTURY = 0x32
B_24H, B_BINARY = 0x02, 0x04  # status B: 24-hour mode, binary (not BCD) data mode
A_DEFAULT = 0x26  # 32.768 kHz time base, 1024 Hz periodic rate; UIP (bit 7) clear
D_VALID = 0x80  # VRT: RAM and time valid
BASEMEM_LO, EXTMEM_LO, EXTMEM2_LO = 0x15, 0x17, 0x30  # base KiB, ext KiB (two copies)
ABOVE16M_LO = 0x34  # RAM above 16 MiB in 64 KiB units (SeaBIOS CMOS_MEM_EXTMEM2_LOW)
ABOVE4G = 0x5B  # RAM above 4 GiB in 64 KiB units, 3 bytes (QEMU / SeaBIOS)
SMP_COUNT = 0x5F  # vCPUs - 1 (QEMU / SeaBIOS CMOS_BIOS_SMP_COUNT)
MIB = 1 << 20


def _bcd(v: int) -> int:
    return ((v // 10) << 4) | (v % 10)


class Cmos:
    """128 bytes of CMOS with a live clock."""

    def __init__(self, mem_bytes: int, vcpus: int = 1) -> None:
        self.index = 0
        self.nvram = bytearray(128)
        self.nvram[REG_A], self.nvram[REG_B], self.nvram[REG_D] = A_DEFAULT, B_24H, D_VALID
        self._put16(BASEMEM_LO, 640)
        ext_kib = min(max(mem_bytes - MIB, 0) // 1024, 0xFFFF)
        self._put16(EXTMEM_LO, ext_kib)
        self._put16(EXTMEM2_LO, ext_kib)
        below4g = min(mem_bytes, 0xE000_0000)
        self._put16(ABOVE16M_LO, max(below4g - 16 * MIB, 0) >> 16)
        above = max(mem_bytes - below4g, 0) >> 16
        self.nvram[ABOVE4G : ABOVE4G + 3] = above.to_bytes(3, "little")
        self.nvram[SMP_COUNT] = vcpus - 1

    def _put16(self, reg: int, value: int) -> None:
        self.nvram[reg : reg + 2] = value.to_bytes(2, "little")

    def read(self, offset: int, size: int) -> int:
        if offset == 0:
            return self.index
        return self.register(self.index)

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == 0:
            self.index = value & 0x7F  # bit 7 masks NMI; not modelled
        elif self.index not in (REG_C, REG_D):
            self.nvram[self.index] = value & 0xFF

    def register(self, reg: int) -> int:
        """The value of CMOS register ``reg`` now."""
        clock = self._clock()
        if reg in clock:
            value = clock[reg]
            return value if self.nvram[REG_B] & B_BINARY else _bcd(value)
        if reg == REG_C:
            return 0  # no interrupt flags
        return self.nvram[reg]

    @staticmethod
    def _clock() -> dict[int, int]:
        t = time.gmtime()
        return {
            SEC: t.tm_sec, MIN: t.tm_min, HOUR: t.tm_hour, WDAY: (t.tm_wday + 1) % 7 + 1,
            MDAY: t.tm_mday, MONTH: t.tm_mon, YEAR: t.tm_year % 100, CENTURY: t.tm_year // 100,
        }  # fmt: skip
