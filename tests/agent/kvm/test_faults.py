"""Robustness: triple fault, halt forever, unmapped memory, I/O flood; other VMs carry on."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from agent.backends.kvm.guests.build import Guest
from tests.agent.kvm.conftest import Collector, MakeVm, wait_state

pytestmark = pytest.mark.kvm

TRIPLE_FAULT = """# mode: protected
        .code32
        .globl _start
_start: lidt    idtr            # an empty IDT: #DE -> #GP -> #DF -> triple fault
        xor     %ecx, %ecx
        div     %ecx
idtr:   .word 0
        .long 0
"""
UNMAPPED = """# mode: protected
        .code32
        .globl _start
_start: movl    0x40000000, %eax    # 1 GiB: far above the VM's 16 MiB of RAM
        mov     $0x3f8, %dx
        mov     $'k', %al
        out     %al, %dx
        mov     $'\\n', %al
        out     %al, %dx
        cli
        hlt
"""
FLOOD = """# mode: real
        .code16
        .globl _start
_start: mov     $0x80, %dx
1:      in      %dx, %al
        jmp     1b
"""


def test_triple_fault_fails_the_vm_and_others_continue(
    make_vm: MakeVm, asm: Callable[[str, str], Guest], guests: dict[str, Guest],
    collector: Collector,
) -> None:  # fmt: skip
    other = make_vm(asm(FLOOD, "busy"), vm_id=2, name="busy")
    bad = make_vm(asm(TRIPLE_FAULT, "tf"), vm_id=1, name="tf", on_fault="stop")
    assert wait_state(bad, "failed")
    faults = collector.kinds("vm-fault")
    assert faults[0]["fault"] == "triple-fault"
    assert faults[0]["vm"] == 1
    assert "triple fault" in bad.reason
    exits = other.exits
    time.sleep(0.05)
    assert other.state == "running"
    assert other.exits > exits


@pytest.mark.parametrize("policy", ["stop", "keep"])
def test_unmapped_memory(
    make_vm: MakeVm, asm: Callable[[str, str], Guest], collector: Collector, policy: str
) -> None:
    vm = make_vm(asm(UNMAPPED, "unmapped"), on_fault=policy)
    if policy == "stop":
        assert wait_state(vm, "failed")
        assert list(vm.console) == []
    else:  # the read returns all ones and the guest goes on to print and halt
        assert wait_state(vm, "halted")
        assert list(vm.console) == ["k"]
    (fault,) = collector.kinds("vm-fault")
    assert fault["fault"] == "unmapped-memory"
    assert "0x40000000" in str(fault["detail"])
    assert fault["action"] == ("kept" if policy == "keep" else "stopped")


@pytest.mark.parametrize("policy", ["stop", "keep"])
def test_halt_forever_is_reported_once(
    make_vm: MakeVm, guests: dict[str, Guest], collector: Collector, policy: str
) -> None:
    vm = make_vm(guests["serial"], on_fault=policy)
    assert wait_state(vm, "halted")
    time.sleep(0.05)
    assert len(collector.kinds("vm-halted")) == 1
    assert vm.runners[0].join(0.5) == (policy == "stop")  # keep: parked, thread alive


def test_io_flood_is_reported_and_stopped(
    make_vm: MakeVm, asm: Callable[[str, str], Guest], collector: Collector
) -> None:
    vm = make_vm(asm(FLOOD, "flood"), on_fault="stop", flood_limit=1000.0)
    assert wait_state(vm, "failed", timeout=30)
    (fault,) = collector.kinds("vm-fault")
    assert fault["fault"] == "io-flood"


def test_stop_ends_vcpu_threads_within_a_second(
    make_vm: MakeVm, asm: Callable[[str, str], Guest], guests: dict[str, Guest]
) -> None:
    busy = make_vm(asm(FLOOD, "flood"), vm_id=1)
    halted = make_vm(guests["serial"], vm_id=2)
    assert wait_state(halted, "halted")
    started = time.monotonic()
    assert busy.stop()
    assert halted.stop()
    assert time.monotonic() - started < 1.0
    assert busy.state == halted.state == "stopped"
