"""i8042 keyboard controller at 0x60 (data) / 0x64 (status, command), with a keyboard that
acknowledges everything and has no keys pressed.

Enough for firmware probing: controller self-test (0xAA → 0x55), interface test (0xAB → 0x00),
command byte read/write (0x20 / 0x60), output port write (0xD1, A20), keyboard reset
(0xFF → 0xFA 0xAA) and every other keyboard command acknowledged with 0xFA. Command set: IBM PS/2
Technical Reference, "Keyboard/Auxiliary Device Controller".
"""

from __future__ import annotations

from collections import deque

__all__ = ["I8042", "I8042_DATA", "I8042_STATUS"]

I8042_DATA, I8042_STATUS = 0x60, 0x64
ST_OBF, ST_SYS, ST_CMD = 0x01, 0x04, 0x08  # output buffer full, system flag, last write = cmd
ACK, BAT_OK, SELFTEST_OK = 0xFA, 0xAA, 0x55
CMD_READ_CB, CMD_WRITE_CB, CMD_SELFTEST, CMD_IFTEST = 0x20, 0x60, 0xAA, 0xAB
CMD_WRITE_OUTPORT, CMD_WRITE_AUX = 0xD1, 0xD4
KBD_RESET, KBD_IDENTIFY = 0xFF, 0xF2


class I8042:
    """One device spanning 0x60-0x64; offsets 0 (data) and 4 (status/command)."""

    def __init__(self) -> None:
        self.out: deque[int] = deque()
        self.command_byte = 0x45  # translate, system flag, keyboard interrupt enabled
        self.output_port = 0x03  # A20 enabled, no reset
        self._pending: int | None = None  # command waiting for its data byte
        self._status_cmd = 0

    def read(self, offset: int, size: int) -> int:
        if offset == 4:
            return (ST_OBF if self.out else 0) | ST_SYS | self._status_cmd
        return self.out.popleft() if self.out else 0

    def write(self, offset: int, size: int, value: int) -> None:
        value &= 0xFF
        if offset == 4:
            self._status_cmd = ST_CMD
            self._command(value)
        elif offset == 0:
            self._status_cmd = 0
            self._data(value)

    def _command(self, cmd: int) -> None:
        if cmd == CMD_READ_CB:
            self.out.append(self.command_byte)
        elif cmd in (CMD_WRITE_CB, CMD_WRITE_OUTPORT, CMD_WRITE_AUX):
            self._pending = cmd
        elif cmd == CMD_SELFTEST:
            self.out.append(SELFTEST_OK)
        elif cmd == CMD_IFTEST:
            self.out.append(0x00)

    def _data(self, value: int) -> None:
        pending, self._pending = self._pending, None
        if pending == CMD_WRITE_CB:
            self.command_byte = value
        elif pending == CMD_WRITE_OUTPORT:
            self.output_port = value
        elif pending == CMD_WRITE_AUX:
            pass  # no mouse: the byte goes nowhere and no ACK comes back
        elif value == KBD_RESET:
            self.out.extend((ACK, BAT_OK))
        elif value == KBD_IDENTIFY:
            self.out.extend((ACK, 0xAB, 0x83))  # MF2 keyboard id
        else:
            self.out.append(ACK)
