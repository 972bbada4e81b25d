"""The sample guests on real /dev/kvm, each in its CPU mode."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from agent.backends.kvm.guests.build import Guest
from agent.backends.kvm.runner import VcpuRunner
from agent.hooks.table import HookTable
from agent.model import Direction, Stage
from tests.agent.kvm.conftest import Collector, MakeVm, spec, wait_state

pytestmark = pytest.mark.kvm

ZERO_EXTEND = """# mode: long
        .code64
        .globl _start
_start: mov     $-1, %rax           # all 64 bits set
        mov     $0xe4, %dx
        in      %dx, %eax           # a 32-bit IN zero-extends into RAX (SDM vol. 1, 3.4.1.1)
        mov     %rax, %rbx
        mov     $-1, %rax
        in      %dx, %ax            # a 16-bit IN leaves bits 63:16 alone
        cli
        hlt
"""


class Counter:
    """A bus device answering 0x10, 0x11, 0x12, ... (per access size)."""

    def __init__(self) -> None:
        self.n = 0

    def read(self, offset: int, size: int) -> int:
        self.n += 1
        return (0x0F + self.n) * (0x01010101 & ((1 << 8 * size) - 1))

    def write(self, offset: int, size: int, value: int) -> None:
        pass


def regs_when_halted(runner: VcpuRunner) -> dict[str, int]:
    r = runner.ctx.vcpu.get_regs()
    return {"rax": r.rax, "rbx": r.rbx, "rcx": r.rcx, "rdi": r.rdi, "rip": r.rip}


def test_serial_driver_prints_hello(make_vm: MakeVm, guests: dict[str, Guest]) -> None:
    vm = make_vm(guests["serial"])
    assert wait_state(vm, "halted")
    assert list(vm.console) == ["hello"]
    assert vm.bus.open_bus_counts() == {}  # LSR said "empty" every time


def test_cmos_clock_reader_prints_host_time(make_vm: MakeVm, guests: dict[str, Guest]) -> None:
    before = time.gmtime()
    vm = make_vm(guests["cmos"])
    assert wait_state(vm, "halted")
    (line,) = vm.console
    hh, mm, ss = (int(x) for x in line.split(":"))
    now = time.gmtime()
    assert (before.tm_hour, before.tm_min) <= (hh, mm) <= (now.tm_hour, now.tm_min)
    assert 0 <= ss < 60


def test_string_input_elements_and_register_advance(
    make_vm: MakeVm, guests: dict[str, Guest], collector: Collector
) -> None:
    guest = guests["string_in"]
    table = HookTable()
    table.set(spec(id="ins", direction=Direction.IN, port=0xE0, stage=Stage.POST))
    vm = make_vm(guest, table=table, start=False)
    vm.bus.register(0xE0, 1, Counter())
    vm.start()
    assert wait_state(vm, "halted")
    buf = guest.symbols["buf"]
    data = vm.memory.read(buf, 20)
    assert data[:8] == bytes(range(0x10, 0x18))  # rep insb
    assert data[8:16] == bytes([0x18, 0x18, 0x19, 0x19, 0x1A, 0x1A, 0x1B, 0x1B])  # rep insw
    assert data[16:20] == bytes([0x1C] * 4)  # insd
    regs = regs_when_halted(vm.runners[0])
    assert regs["rdi"] == buf + 20  # advanced past every element, as hardware does
    assert regs["rcx"] == 0
    assert collector.wait(lambda: len(collector.all_events()) == 3)
    insb, insw, insd = collector.all_events()
    assert (insb.size, insb.count, insb.string, insb.rep) == (1, 8, True, True)
    assert insb.data == tuple(range(0x10, 0x18))
    assert insb.regs["rdi"] == buf
    assert insb.regs["rcx"] == 8
    assert (insw.size, insw.count, insw.data) == (2, 4, (0x1818, 0x1919, 0x1A1A, 0x1B1B))
    assert (insd.size, insd.count, insd.string, insd.rep, insd.value) == (
        4,
        1,
        True,
        False,
        0x1C1C1C1C,
    )
    assert insb.rip == guest.symbols["_start"] + 15  # after cld, mov dx, mov edi, mov ecx


def test_32bit_in_zero_extends_rax(make_vm: MakeVm, asm: Callable[[str, str], Guest]) -> None:
    vm = make_vm(asm(ZERO_EXTEND, "zext"), start=False)
    vm.bus.register(0xE4, 4, Counter())
    vm.start()
    assert wait_state(vm, "halted")
    regs = regs_when_halted(vm.runners[0])
    assert regs["rbx"] == 0x10101010  # upper half cleared
    assert regs["rax"] == 0xFFFF_FFFF_FFFF_1111


def test_two_vcpus_read_their_own_ports(
    make_vm: MakeVm, guests: dict[str, Guest], collector: Collector
) -> None:
    table = HookTable()
    table.set(spec(id="cpu0", direction=Direction.IN, core=0))
    table.set(spec(id="cpu1", direction=Direction.IN, core=1))
    vm = make_vm(guests["two_vcpu"], table=table, vcpus=2)
    assert wait_state(vm, "halted")
    assert collector.wait(lambda: len(collector.all_events()) == 6)
    seen = {(e.hook_id, e.vcpu, e.port) for e in collector.all_events()}
    assert seen == {("cpu0", 0, 0x100), ("cpu1", 1, 0x200)}


def test_per_vcpu_entries(make_vm: MakeVm, guests: dict[str, Guest]) -> None:
    guest = guests["two_vcpu"]
    entries = (guest.symbols["_start"], guest.symbols["ap_start"])
    vm = make_vm(guest, vcpus=2, entries=entries)
    assert wait_state(vm, "halted")
    assert vm.runners[1].ctx.vcpu.get_regs().rdi == 1
    assert vm.bus.open_bus_counts() == {0x100: (3, 0), 0x200: (3, 0)}
