"""The C fast path of the vCPU loop (agent/backends/kvm/fast.py, fastpath.c) on real guests.

Hook semantics run under both loops in test_hooks.py; here: that the C loop really handles the
exits it claims (open bus, observed open-bus ports) with the same events the Python loop makes,
that it gives exits back to Python when the hooks change, that registers are synced only while
hooked ports see traffic, and that a rewritten instruction is decoded again.
"""

from __future__ import annotations

import ctypes
import itertools
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.backends.kvm import abi, fast
from agent.backends.kvm.guests.build import Guest
from agent.backends.kvm.machine import Machine
from agent.backends.kvm.runner import VcpuRunner
from agent.events import Event
from agent.hooks.table import HookTable
from agent.model import Direction, Stage
from tests.agent.kvm.conftest import Collector, MakeVm, spec, wait_state

KVM = pytest.mark.kvm
BOTH = pytest.mark.parametrize("make_vm", ["c-loop", "python-loop"], indirect=True)
C_LOOP = pytest.mark.parametrize("make_vm", ["c-loop"], indirect=True)

# OUT of an incrementing AL to open-bus port 0x80, forever: every value is one more than the last.
OUT_LOOP = """# mode: real
        .code16
        .globl _start, site
_start: mov     $0x80, %dx
        xor     %al, %al
site:   out     %al, %dx
        inc     %al
        jmp     site
"""

# `in $0x80, %al` three times at `site`, then the guest rewrites it to `insb; nop` (same length,
# same key for the C cache: only the bytes differ) and runs it twice more.
SELF_MODIFYING = """# mode: real
        .code16
        .globl _start, site
_start: mov     $0x80, %dx
        push    %cs
        pop     %es
        mov     $5, %si
again:  mov     $buf, %di
site:   in      $0x80, %al
        dec     %si
        cmp     $2, %si
        jne     1f
        movw    $0x906c, %cs:site   # insb; nop
1:      test    %si, %si
        jnz     again
        cli
        hlt
buf:    .byte   0
"""


def runner(vm: Machine) -> VcpuRunner:
    return vm.runners[0]


def run_for(make_vm: MakeVm, guest: Guest, table: HookTable, seconds: float) -> Machine:
    vm = make_vm(guest, table=table)
    time.sleep(seconds)
    vm.stop()
    return vm


def shape(e: Event) -> tuple[object, ...]:
    """What must not depend on the loop: everything but the timestamp and sequence."""
    regs = dict(e.regs)
    return (e.hook_id, e.dir, e.port, e.size, e.count, e.string, e.rep, e.value, e.vm,
            e.vm_name, e.vcpu, e.rip, e.stage, tuple(sorted(regs.items())))  # fmt: skip


@KVM
@C_LOOP
def test_the_c_loop_answers_open_bus_without_python(
    make_vm: MakeVm, guests: dict[str, Guest]
) -> None:
    vm = make_vm(guests["in_loop"], table=HookTable())
    time.sleep(0.3)
    r = runner(vm)
    assert not r.ctx.vcpu.regs_synced, "no hooked port: KVM is not asked to copy registers"
    vm.stop()
    assert r.ctx.fast is not None
    assert r.io_exits > 1000
    assert r.ctx.slow_exits < 10  # the start, the stop
    assert vm.bus.open_bus_reads[0x80] == r.io_exits


@KVM
@C_LOOP
def test_an_in_hook_gives_the_same_events_from_both_loops(
    make_vm: MakeVm, guests: dict[str, Guest], collector: Collector
) -> None:
    table = HookTable()
    table.set(spec(id="p80", direction=Direction.IN, port=0x80, stage=Stage.ALL))
    c_vm = run_for(make_vm, guests["in_loop"], table, 0.3)
    r = runner(c_vm)
    c_events = collector.all_events()
    assert r.ctx.slow_exits < r.io_exits // 100, "observed exits stay in C"
    assert collector.block_calls > 0
    collector.batches.clear()
    py_vm = make_vm(guests["in_loop"], table=table, vm_id=1, start=False)
    for other in py_vm.runners:
        other.ctx.fast = None
    py_vm.start()
    time.sleep(0.2)
    py_vm.stop()
    py_events = collector.all_events()
    assert len(c_events) > 1000
    assert len(py_events) > 100
    # a polling loop: per stage, the first exit (RAX as the guest started) and all the others
    shapes = {shape(e) for e in c_events}
    assert shapes == {shape(e) for e in py_events}
    assert len(shapes) <= 4
    post = [e for e in c_events if e.stage is Stage.POST]
    assert {e.value for e in post} == {0xFF}
    assert {e.rip for e in c_events} == {guests["in_loop"].entry + 3}  # the IN, after a mov
    assert {e.value for e in c_events if e.stage is Stage.PRE} == {0}
    assert sum(e.stage is Stage.PRE for e in c_events) == sum(
        e.stage is Stage.POST for e in c_events
    )


@KVM
@BOTH
def test_out_values_arrive_in_order_without_gaps(
    make_vm: MakeVm, asm: Callable[[str, str], Guest], collector: Collector
) -> None:
    guest = asm(OUT_LOOP, "out_loop")
    table = HookTable()
    table.set(spec(id="o80", direction=Direction.OUT, port=0x80))
    vm = run_for(make_vm, guest, table, 0.3)
    values = [e.value for e in collector.all_events()]
    assert len(values) > 100
    assert all((b - a) & 0xFF == 1 for a, b in itertools.pairwise(values))
    assert {e.rip for e in collector.all_events()} == {guest.symbols["site"]}
    assert {e.regs["rax"] & 0xFF for e in collector.all_events()} == set(range(256))
    assert vm.bus.open_bus_writes[0x80] == runner(vm).io_exits


@KVM
@C_LOOP
def test_hooks_changed_while_the_guest_runs_in_c(
    make_vm: MakeVm, guests: dict[str, Guest], collector: Collector
) -> None:
    table = HookTable()
    vm = make_vm(guests["in_loop"], table=table)
    r = runner(vm)
    time.sleep(0.1)
    assert r.io_exits > 0
    assert not collector.all_events()
    table.set(spec(id="p80", direction=Direction.IN, port=0x80))
    r.kick()  # what KvmBackend.hooks_changed does for every vCPU
    assert collector.wait(lambda: len(collector.all_events()) > 100, timeout=5)
    assert r.ctx.vcpu.regs_synced
    assert all(e.regs["rdx"] == 0x80 for e in collector.all_events())
    table.remove("p80")
    r.kick()
    time.sleep(0.05)
    before = len(collector.all_events())
    time.sleep(0.1)
    assert len(collector.all_events()) == before, "no events once the hook is gone"
    vm.stop()


@KVM
@BOTH
def test_a_rewritten_instruction_is_decoded_again(
    make_vm: MakeVm, asm: Callable[[str, str], Guest], collector: Collector
) -> None:
    guest = asm(SELF_MODIFYING, "smc_open_bus")
    table = HookTable()
    table.set(spec(id="p80", direction=Direction.IN, port=0x80, stage=Stage.POST))
    vm = make_vm(guest, table=table)
    assert wait_state(vm, "halted")
    assert collector.wait(lambda: len(collector.all_events()) == 5)
    events = collector.all_events()
    assert {e.rip for e in events} == {guest.symbols["site"]}
    assert [(e.string, e.data) for e in events] == [(False, ())] * 3 + [(True, (0xFF,))] * 2
    assert [e.regs["rsi"] for e in events] == [5, 4, 3, 2, 1]


def test_build_names_a_missing_compiler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "/nonexistent/cc")
    with pytest.raises(RuntimeError, match="/nonexistent/cc"):
        fast.build(tmp_path / "x.so")
    assert not list(tmp_path.iterdir()), "nothing half-built is left"


def test_every_abi_constant_is_checked_against_the_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fastpath.c exports its constants by name; abi.py compares them all at load."""
    try:
        path = fast.build(tmp_path / "abi.so")
    except RuntimeError as e:
        pytest.skip(str(e))
    lib = ctypes.CDLL(str(path))
    assert abi.library_constants(lib) == abi.CONSTANTS
    assert {"P_OBSERVE", "P_HOOKED", "R_FLUSH", "R_ERRNO"} <= abi.CONSTANTS.keys()
    abi.check(lib, path.name)  # agrees: no error
    monkeypatch.setitem(abi.CONSTANTS, "P_OBSERVE", 7)
    with pytest.raises(OSError, match=r"constant P_OBSERVE is 2 in C but 7 in abi\.py"):
        abi.check(lib, path.name)
    monkeypatch.delitem(abi.CONSTANTS, "P_OBSERVE")
    with pytest.raises(OSError, match="constant P_OBSERVE is 2 in C but None"):
        fast.FastLib(path)
