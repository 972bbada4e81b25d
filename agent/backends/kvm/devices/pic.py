"""A minimal pair of 8259A PICs (0x20-0x21 master, 0xA0-0xA1 slave) and the PIT's IRQ 0.

There is no in-kernel irqchip: the VMM injects interrupts itself with KVM_INTERRUPT. The PIC
model keeps what firmware programs — the ICW1-4 initialisation sequence (vector base from ICW2)
and the interrupt mask — and a set of pending lines; :class:`Ticker` raises IRQ 0 at the rate
PIT channel 0 is programmed for and asks the vCPU to inject it. Priorities, ISR/EOI bookkeeping
and the slave's lines are not modelled. Reference: Intel 8259A datasheet (231468).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from agent.backends.kvm.devices.pit import PIT_FREQ_HZ, Pit

__all__ = ["PIC_MASTER", "PIC_SLAVE", "Pic", "Ticker"]

PIC_MASTER, PIC_SLAVE = 0x20, 0xA0
ICW1_INIT, ICW1_IC4 = 0x10, 0x01  # ICW1: start initialisation; ICW4 follows


class _Chip:
    def __init__(self) -> None:
        self.base = 0x08
        self.imr = 0xFF
        self.init_step = 0  # 0: operational; 2..4: expecting ICW2..ICW4
        self.needs_icw4 = False
        self.initialised = False


class Pic:
    """Master + slave; registered at 0x20 (offsets 0-1) and 0xA0 (offsets 2-3)."""

    def __init__(self) -> None:
        self.chips = (_Chip(), _Chip())
        self.pending = 0  # bit n: IRQ n raised and not yet injected (master lines)
        self._lock = threading.Lock()

    def read(self, offset: int, size: int) -> int:
        chip = self.chips[offset >> 1]
        return chip.imr if offset & 1 else 0  # IRR/ISR reads (OCW3) answer "nothing pending"

    def write(self, offset: int, size: int, value: int) -> None:
        chip, value = self.chips[offset >> 1], value & 0xFF
        if not offset & 1:
            if value & ICW1_INIT:
                chip.init_step, chip.needs_icw4, chip.imr = 2, bool(value & ICW1_IC4), 0
            return  # OCW2 (EOI) / OCW3: nothing to track
        if chip.init_step == 2:
            chip.base, chip.init_step = value & 0xF8, 3
        elif chip.init_step == 3:
            chip.init_step = 4 if chip.needs_icw4 else 0
            chip.initialised = chip.initialised or not chip.needs_icw4
        elif chip.init_step == 4:
            chip.init_step, chip.initialised = 0, True
        else:
            chip.imr = value

    def raise_irq(self, irq: int) -> None:
        with self._lock:
            self.pending |= 1 << irq

    def pending_vector(self) -> int | None:
        """The vector of the lowest pending unmasked master IRQ, if any."""
        master = self.chips[0]
        ready = self.pending & ~master.imr
        if not master.initialised or not ready:
            return None
        irq = (ready & -ready).bit_length() - 1
        return master.base + irq

    def ack(self, vector: int) -> None:
        with self._lock:
            self.pending &= ~(1 << (vector - self.chips[0].base))


class Ticker:
    """A thread raising IRQ 0 at PIT channel 0's rate while the guest has it unmasked."""

    def __init__(self, pic: Pic, pit: Pit, deliver: Callable[[], None], name: str) -> None:
        self.pic, self.pit, self.deliver = pic, pit, deliver
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(1.0)

    def _run(self) -> None:
        while not self._stop.wait(max(self.pit.counters[0].reload / PIT_FREQ_HZ, 0.001)):
            if self.pit.counters[0].mode in (2, 3) and self.pic.chips[0].initialised:
                self.pic.raise_irq(0)
                self.deliver()
