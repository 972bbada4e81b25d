"""Output devices that feed the guest console: the 16550 UART at COM1 and the debug port 0x402.

Both line-buffer what the guest writes and hand each complete line (or a 256-byte chunk of a
very long one) to ``emit(text)``; the VM turns that into ``notify("console", ...)``.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["COM1", "DEBUG_PORT", "DebugCon", "LineBuffer", "Uart16550"]

COM1 = 0x3F8  # first serial port (PC/AT convention)
DEBUG_PORT = 0x402  # QEMU's isa-debugcon port, where SeaBIOS prints (CONFIG_DEBUG_IO)
DEBUGCON_READBACK = 0xE9  # QEMU's debugcon answers reads with 0xe9 so firmware can detect it
LINE_MAX = 256

# 16550 register offsets and bits (National Semiconductor PC16550D datasheet)
THR, IER, IIR, LCR, MCR, LSR, MSR, SCR = range(8)
LCR_DLAB = 0x80  # divisor latch access: offsets 0/1 are DLL/DLM
LSR_THRE, LSR_TEMT = 0x20, 0x40  # transmit holding register / transmitter empty
IIR_NONE, IIR_THRE = 0x01, 0x02  # no interrupt pending / THR empty pending
IER_THRE = 0x02
MSR_DCD_DSR_CTS = 0xB0  # carrier detect, data set ready, clear to send


class LineBuffer:
    """Bytes in, lines out: ``feed`` calls ``emit`` for every ``\\n`` (stripped) or full chunk."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self._emit = emit
        self._buf = bytearray()

    def feed(self, byte: int) -> None:
        if byte == 0x0A:
            self.flush()
        elif byte != 0x0D:
            self._buf.append(byte)
            if len(self._buf) >= LINE_MAX:
                self.flush()

    def flush(self) -> None:
        """Emit what is buffered (even an unterminated line); nothing if empty."""
        if self._buf:
            text = self._buf.decode("utf-8", "replace")
            self._buf.clear()
            self._emit(text)


class Uart16550:
    """A 16550A with no receive path: the transmitter is always empty (LSR.THRE | LSR.TEMT)."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self.out = LineBuffer(emit)
        self.regs = [0] * 8
        self.divisor = 12  # 9600 baud; only stored

    def read(self, offset: int, size: int) -> int:
        dlab = self.regs[LCR] & LCR_DLAB
        if offset in (THR, IER) and dlab:
            return (self.divisor >> (8 * offset)) & 0xFF
        if offset == THR:
            return 0  # no received data
        if offset == IIR:
            return IIR_THRE if self.regs[IER] & IER_THRE else IIR_NONE
        if offset == LSR:
            return LSR_THRE | LSR_TEMT
        if offset == MSR:
            return MSR_DCD_DSR_CTS
        return self.regs[offset]

    def write(self, offset: int, size: int, value: int) -> None:
        value &= 0xFF
        dlab = self.regs[LCR] & LCR_DLAB
        if offset in (THR, IER) and dlab:
            shift = 8 * offset
            self.divisor = (self.divisor & ~(0xFF << shift)) | (value << shift)
        elif offset == THR:
            self.out.feed(value)
        elif offset not in (IIR, LSR, MSR):  # IIR's write side is the FCR: accepted, ignored
            self.regs[offset] = value


class DebugCon:
    """QEMU's isa-debugcon: every byte written is console output."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self.out = LineBuffer(emit)

    def read(self, offset: int, size: int) -> int:
        return DEBUGCON_READBACK

    def write(self, offset: int, size: int, value: int) -> None:
        self.out.feed(value & 0xFF)
