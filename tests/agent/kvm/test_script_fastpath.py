"""Simple conditions in the C loop (fastpath.c P_COND, agent/script/bytecode.py) on real guests:
a false condition is answered in C and never reaches Python; true hits are recorded and each
hook gets only the hits its own condition accepts; the C interpreter agrees with the reference."""

from __future__ import annotations

import ctypes
import random
import time

import pytest

from agent.backends.kvm import _sys as S
from agent.backends.kvm import fast
from agent.backends.kvm.abi import P_COND
from agent.backends.kvm.guests.build import Guest
from agent.hooks import lang
from agent.hooks.table import HookTable
from agent.script import compile_condition
from agent.script.bytecode import KVM_REGS, compile_bytecode, run
from tests.agent.kvm.conftest import Collector, MakeVm

C_LOOP = pytest.mark.parametrize("make_vm", ["c-loop"], indirect=True)

# OUT of an incrementing AL to open-bus port 0x80, forever.
OUT_LOOP = """# mode: real
        .code16
        .globl _start
_start: mov     $0x80, %dx
        xor     %al, %al
1:      out     %al, %dx
        inc     %al
        jmp     1b
"""


def table_of(*commands: str) -> HookTable:
    table = HookTable()
    for i, command in enumerate(commands):
        table.set(lang.parse(command, hook_id=f"c{i}"))
    return table


@pytest.mark.kvm
@C_LOOP
def test_a_false_condition_never_reaches_python(
    make_vm: MakeVm, guests: dict[str, Guest], collector: Collector
) -> None:
    vm = make_vm(guests["in_loop"], table=table_of("!ioin 80 condition { @al == 1 }"))
    time.sleep(0.4)
    r = vm.runners[0]
    vm.stop()
    assert r.ctx.fast is not None
    assert r.ctx.fast.planned(1 << 16 | 0x80) == P_COND
    assert r.io_exits > 1000
    assert r.ctx.slow_exits < 10  # the start, the stop, the first exit of the hooked port
    assert collector.all_events() == []


@pytest.mark.kvm
@C_LOOP
def test_each_hook_gets_the_hits_its_own_condition_accepts(
    make_vm: MakeVm, asm: object, collector: Collector
) -> None:
    guest = asm(OUT_LOOP, "out_loop_cond")  # type: ignore[operator]
    table = table_of("!ioout 80 condition { @al == 7 }", "!ioout 80 condition { @al == 0n9 }")
    vm = make_vm(guest, table=table)
    time.sleep(0.4)
    r = vm.runners[0]
    vm.stop()
    events = collector.all_events()
    sevens = [e for e in events if e.hook_id == "c0"]
    nines = [e for e in events if e.hook_id == "c1"]
    assert {e.value for e in sevens} == {7}
    assert {e.value for e in nines} == {9}
    assert abs(len(sevens) - len(nines)) <= 1  # AL counts up: one of each per 256 OUTs
    assert len(sevens) >= r.io_exits // 256 - 2
    assert r.ctx.slow_exits < r.io_exits // 100, "hits and misses stay in C"


def test_the_c_interpreter_agrees_with_the_reference() -> None:
    lib, reason = fast.load()
    if lib is None:
        pytest.skip(f"no C fast path: {reason}")
    c = ctypes.CDLL(str(lib.path))
    c.ioin_cond_eval.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p]
    c.ioin_cond_eval.restype = ctypes.c_int
    assert KVM_REGS == S.REG_NAMES  # the bytecode's register order is struct kvm_regs'
    rng = random.Random(13)
    sources = ["$context == 3f8 && @al != 0", "@eax + 1 > 5 || $context == 70",
               "(@rax >> 4) % 3 == 1", "-@rbx < 0", "!(@ah ^ 10) | ~@al & 1",
               "@rcx / 3 == 2", "@rdx == 0 || @rcx % 7 > 1", "@r8l << @cl != 0",
               "@rip - 100 >= -5 && @cf"]  # fmt: skip
    for source in sources:
        bc = compile_bytecode(compile_condition(source).tree)
        assert bc is not None
        code = (ctypes.c_uint64 * len(bc.code))(*bc.code)
        for _ in range(500):
            regs = [rng.choice([0, 1, 2, 0x3F8, rng.getrandbits(64), rng.getrandbits(8)])
                    for _ in range(len(KVM_REGS))]  # fmt: skip
            port = rng.choice([0x3F8, 0x70, 0])
            array = (ctypes.c_uint64 * len(regs))(*regs)
            got = bool(c.ioin_cond_eval(ctypes.addressof(code), port, ctypes.addressof(array)))
            assert got == run(bc.code, port, regs), (source, port, regs)
