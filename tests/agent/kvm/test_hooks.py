"""Hook semantics on the kvm backend: filters, stages, sc, set, break / resume / timeout."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agent.backends.kvm.commands import Resume
from agent.backends.kvm.guests.build import Guest
from agent.hooks.table import HookTable
from agent.model import Direction, Stage
from tests.agent.kvm.conftest import Collector, MakeVm, spec, wait_state

# every test twice: the C fast path and the Python loop must agree on every semantic
pytestmark = [
    pytest.mark.kvm,
    pytest.mark.parametrize("make_vm", ["c-loop", "python-loop"], indirect=True),
]

# IN from 0xe8 (a device answering 0x5a), OUT of 0x41 to 0xe9 (recorded); then report RAX on
# COM1's scratch register (0x3ff) so the test sees what the guest ended up with; halt.
IN_OUT = """# mode: real
        .code16
        .globl _start, the_in, the_out
_start: mov     $0x1234, %ax
        mov     $0xe8, %dx
the_in: in      %dx, %al
        mov     %ax, %bx
        mov     $0xe9, %dx
        mov     $0x41, %al
the_out:
        out     %al, %dx
        mov     %bx, %ax
        mov     $0xea, %dx
        out     %ax, %dx            # RAX after the IN, for the test
        cli
        hlt
"""


class Device:
    def __init__(self) -> None:
        self.reads = 0
        self.writes: list[tuple[int, int]] = []

    def read(self, offset: int, size: int) -> int:
        self.reads += 1
        return 0x5A

    def write(self, offset: int, size: int, value: int) -> None:
        self.writes.append((offset, value))


@pytest.fixture
def run_in_out(
    make_vm: MakeVm, asm: Callable[[str, str], Guest]
) -> Callable[..., tuple[Device, Guest]]:
    guest = asm(IN_OUT, "in_out")

    def run(table: HookTable, wait: bool = True, **kw: Any) -> tuple[Device, Guest]:
        vm = make_vm(guest, table=table, start=False, **kw)
        dev = Device()
        vm.bus.register(0xE8, 3, dev)  # 0xe8 IN, 0xe9 OUT, 0xea report
        vm.start()
        if wait:
            assert wait_state(vm, "halted")
        run.vm = vm  # type: ignore[attr-defined]
        return dev, guest

    return run


def hook(table: HookTable, hook_id: str, direction: Direction, **kw: Any) -> None:
    table.set(spec(id=hook_id, direction=direction, **kw))


def reported_rax(dev: Device) -> int:
    return next(v for off, v in dev.writes if off == 2)


def test_filters_port_pid_core_and_direction(
    run_in_out: Callable[..., tuple[Device, Guest]], collector: Collector
) -> None:
    table = HookTable()
    hook(table, "in-e8", Direction.IN, port=0xE8)
    hook(table, "out-all", Direction.OUT)
    hook(table, "other-vm", Direction.IN, pid=2)
    hook(table, "other-core", Direction.IN, core=1)
    hook(table, "in-other-port", Direction.IN, port=0x60)
    run_in_out(table, vm_id=1)
    assert collector.wait(lambda: len(collector.all_events()) == 3)
    got = [(e.hook_id, e.dir, e.port, e.vm, e.vcpu) for e in collector.all_events()]
    assert got == [
        ("in-e8", Direction.IN, 0xE8, 1, 0),
        ("out-all", Direction.OUT, 0xE9, 1, 0),
        ("out-all", Direction.OUT, 0xEA, 1, 0),
    ]


def test_event_fields_and_stages(
    run_in_out: Callable[..., tuple[Device, Guest]], collector: Collector
) -> None:
    table = HookTable()
    hook(table, "in-all", Direction.IN, port=0xE8, stage=Stage.ALL)
    hook(table, "out-post", Direction.OUT, port=0xE9, stage=Stage.POST)
    dev, guest = run_in_out(table)
    assert collector.wait(lambda: len(collector.all_events()) == 3)
    pre, post, out = collector.all_events()
    assert (pre.stage, pre.value, post.stage, post.value) == (Stage.PRE, 0, Stage.POST, 0x5A)
    assert pre.rip == post.rip == guest.symbols["the_in"]
    assert out.rip == guest.symbols["the_out"]  # the OUT itself, even if KVM moved RIP on
    assert (out.stage, out.value, out.size, out.count, out.string) == (
        Stage.POST,
        0x41,
        1,
        1,
        False,
    )
    assert pre.regs["rax"] == 0x1234
    assert pre.regs["rdx"] == 0xE8
    assert pre.vm_name == "vm1"
    assert pre.ts > 0
    assert dev.reads == 1


def test_sc_skips_the_instruction(
    run_in_out: Callable[..., tuple[Device, Guest]], collector: Collector
) -> None:
    table = HookTable()
    hook(table, "skip-in", Direction.IN, port=0xE8, short_circuit=True)
    hook(table, "skip-out", Direction.OUT, port=0xE9, short_circuit=True)
    dev, _ = run_in_out(table)
    assert dev.reads == 0  # no device access
    assert [v for off, v in dev.writes if off == 1] == []
    assert reported_rax(dev) == 0x1234  # the guest kept RAX
    assert all(e.skipped for e in collector.all_events())


def test_set_value_changes_in_and_out(
    run_in_out: Callable[..., tuple[Device, Guest]], collector: Collector
) -> None:
    table = HookTable()
    hook(table, "set-in", Direction.IN, port=0xE8, stage=Stage.POST, set_value=0x99)
    hook(table, "set-out", Direction.OUT, port=0xE9, set_value=0x77)
    dev, _ = run_in_out(table)
    assert reported_rax(dev) == 0x1299  # the guest read 0x99
    assert (1, 0x77) in dev.writes  # the device got 0x77 instead of 0x41
    assert [e.value_set for e in collector.all_events()] == [0x99, 0x77]


def test_break_pauses_until_resumed_with_a_value(
    run_in_out: Callable[..., tuple[Device, Guest]], collector: Collector
) -> None:
    table = HookTable()
    hook(table, "brk", Direction.IN, port=0xE8, stage=Stage.POST, break_=True)
    dev, _ = run_in_out(table, wait=False)
    vm = run_in_out.vm  # type: ignore[attr-defined]
    assert collector.wait(lambda: bool(collector.kinds("break")))
    (brk,) = collector.kinds("break")
    assert brk["vm"] == 1
    assert brk["vcpu"] == 0
    assert brk["port"] == 0xE8
    assert vm.state == "paused"
    assert collector.all_events()[0].break_id == brk["break_id"]  # flushed before waiting
    runner = vm.breaks.take(str(brk["break_id"]))
    assert runner is vm.runners[0]
    runner.send(Resume(str(brk["break_id"]), 0x33), kick=False)
    assert wait_state(vm, "halted")
    assert reported_rax(dev) == 0x1233


def test_break_resumes_by_itself_after_the_timeout(
    run_in_out: Callable[..., tuple[Device, Guest]], collector: Collector
) -> None:
    table = HookTable()
    hook(table, "brk", Direction.OUT, port=0xE9, break_=True)
    dev, _ = run_in_out(table, break_timeout=0.2)
    assert collector.kinds("break-timeout")[0]["hook_id"] == "brk"
    assert (1, 0x41) in dev.writes


# The same RIP exits twice with different instructions: `in al, dx`, then (patched) `insb`.
SELF_MODIFYING = """# mode: real
        .code16
        .globl _start, site
_start: mov     $0xe8, %dx
        push    %cs
        pop     %es
        mov     $buf, %di
        mov     $2, %si
site:   in      %dx, %al            # becomes insb (0x6c) for the second pass
        movb    $0x6c, %cs:site
        dec     %si
        jnz     site
        cli
        hlt
buf:    .byte   0
"""


def test_decoded_instructions_follow_self_modifying_code(
    make_vm: MakeVm, asm: Callable[[str, str], Guest], collector: Collector
) -> None:
    table = HookTable()
    hook(table, "in-e8", Direction.IN, port=0xE8, stage=Stage.POST)
    guest = asm(SELF_MODIFYING, "smc")
    vm = make_vm(guest, table=table, start=False)
    vm.bus.register(0xE8, 1, Device())
    vm.start()
    assert wait_state(vm, "halted")
    assert collector.wait(lambda: len(collector.all_events()) == 2)
    first, second = collector.all_events()
    assert first.rip == second.rip == guest.symbols["site"]
    assert (first.string, first.data) == (False, ())
    assert (second.string, second.data, second.value) == (True, (0x5A,), 0x5A)
    assert (first.regs["rsi"], second.regs["rsi"]) == (2, 1)  # each exit's own registers
