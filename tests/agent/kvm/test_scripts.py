"""condition { } and script { } on the kvm backend, on real /dev/kvm (issue 13, item 2):
a post-stage script changes what the guest reads, event_sc with @al fakes an IN, a script's
write to another register reaches the vCPU, guest memory through the page tables."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from agent.backends.kvm.guests.build import Guest
from agent.hooks import lang
from agent.hooks.service import HookService
from agent.hooks.table import HookTable
from agent.model import Capability
from agent.notices import Notice
from tests.agent.kvm.conftest import Collector, MakeVm, wait_state

# every test on both loops: a hook with a script always takes the Python hook path
pytestmark = [
    pytest.mark.kvm,
    pytest.mark.parametrize("make_vm", ["c-loop", "python-loop"], indirect=True),
]

# IN from 0xe8 (a device answering 0x5a) with AX = 0x1234 and CX = 0x1111, then report AX and CX
# on 0xea so the test sees what the guest ended up with; halt.
GUEST = """# mode: real
        .code16
        .globl _start, the_in
_start: mov     $0x1234, %ax
        mov     $0x1111, %cx
        mov     $0xe8, %dx
the_in: in      %dx, %al
        mov     $0xea, %dx
        out     %ax, %dx
        mov     %cx, %ax
        out     %ax, %dx
        cli
        hlt
"""


class Device:
    def __init__(self) -> None:
        self.reads = 0
        self.reports: list[int] = []

    def read(self, offset: int, size: int) -> int:
        self.reads += 1
        return 0x5A

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == 2:
            self.reports.append(value)


@pytest.fixture
def run_guest(make_vm: MakeVm, asm: Callable[[str, str], Guest]) -> Callable[[str], Device]:
    guest = asm(GUEST, "scripted_in")

    def run(command: str) -> Device:
        table = HookTable()
        table.set(lang.parse(command, hook_id="s"))
        vm = make_vm(guest, table=table, start=False)
        dev = Device()
        vm.bus.register(0xE8, 3, dev)
        vm.start()
        assert wait_state(vm, "halted")
        return dev

    return run


def test_a_post_stage_script_changes_what_the_guest_reads(
    run_guest: Callable[[str], Device], collector: Collector
) -> None:
    dev = run_guest("!ioin e8 stage post script { if (@al == 5a) { @al = @al + 1; } }")
    assert dev.reports == [0x125B, 0x1111]
    (ev,) = collector.all_events()
    assert (ev.value, ev.value_set) == (0x5B, 0x5B)


def test_event_sc_with_al_fakes_the_in(
    run_guest: Callable[[str], Device], collector: Collector
) -> None:
    dev = run_guest("!ioin e8 script { @al = 77; event_sc(1); }")
    assert dev.reads == 0  # the device was never asked
    assert dev.reports == [0x1277, 0x1111]
    (ev,) = collector.all_events()
    assert ev.skipped


def test_a_write_to_another_register_reaches_the_vcpu(
    run_guest: Callable[[str], Device], collector: Collector
) -> None:
    dev = run_guest("!ioin e8 stage post script { @cx = 4321; @ah = 56; }")
    assert dev.reports == [0x565A, 0x4321]


def test_a_false_condition_leaves_the_access_alone(
    run_guest: Callable[[str], Device], collector: Collector
) -> None:
    dev = run_guest("!ioin e8 stage post condition { @cx == 2222 } script { @al = 0; }")
    assert dev.reports == [0x125A, 0x1111]
    assert collector.all_events() == []


def test_guest_memory_through_the_page_tables(
    run_guest: Callable[[str], Device], collector: Collector
) -> None:
    # the IN's own opcode (0xec: in al, dx), read where RIP points
    run_guest('!ioin e8 script { printf("%x", db(@rip)); }')
    (ev,) = collector.all_events()
    assert ev.output == "ec"


# IN from 0xe8, then report the byte at `buf` (which a script may have written) on 0xea; halt.
MEMORY_GUEST = """# mode: real
        .code16
        .globl _start, buf
_start: mov     $0xe8, %dx
        in      %dx, %al
        xor     %ax, %ax
        movb    buf, %al
        mov     $0xea, %dx
        out     %ax, %dx
        cli
        hlt
buf:    .byte   0x11
"""


def test_a_script_writes_guest_memory_the_guest_then_reads(
    make_vm: MakeVm, asm: Callable[[str, str], Guest], collector: Collector
) -> None:
    guest = asm(MEMORY_GUEST, "scripted_memory")
    buf = guest.symbols["buf"]
    table = HookTable()
    command = f'!ioin e8 script {{ printf("%x", db({buf:#x})); eb({buf:#x}, 0x42); }}'
    table.set(lang.parse(command, hook_id="m"))
    vm = make_vm(guest, table=table, start=False)
    dev = Device()
    vm.bus.register(0xE8, 3, dev)
    vm.start()
    assert wait_state(vm, "halted")
    assert dev.reports == [0x42]  # the guest read what the script wrote
    (ev,) = collector.all_events()
    assert ev.output == "11"  # what was there before


def test_a_string_across_a_page_boundary_is_read_whole(
    run_guest: Callable[[str], Device], collector: Collector
) -> None:
    # "ioin" in the last two bytes of one page and the first three of the next (with its NUL):
    # each page is translated on its own, and the string does not stop at the boundary.
    at = 0x8FFE
    writes = "".join(f"eb({at + i:#x}, {b:#x}); " for i, b in enumerate(b"ioin\0"))
    run_guest(f'!ioin e8 script {{ {writes}printf("%s|%x", {at:#x}, dw({at + 1:#x})); }}')
    (ev,) = collector.all_events()
    assert ev.output == "ioin|696f"  # and a word that straddles the boundary: 'o', 'i'


def test_event_disable_from_a_vcpu_thread_reaches_the_hook_service(
    make_vm: MakeVm, asm: Callable[[str, str], Guest]
) -> None:
    table = HookTable()
    table.set(lang.parse('!ioin e8 script { event_disable("t"); }', hook_id="s"))
    table.set(lang.parse("!ioout ea", hook_id="t"))
    service = HookService(
        table, None, capabilities=frozenset(Capability), backend_name="kvm", changed=lambda: None
    )
    vm = make_vm(asm(GUEST, "disables"), table=table, start=False)
    vm.bus.register(0xE8, 3, Device())
    vm.start()
    assert wait_state(vm, "halted")
    notices: list[Notice] = []

    async def serve() -> None:
        task = asyncio.create_task(service.serve(notices.append))
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(serve())
    assert not table.get("t").enabled
    assert [(f["target"], f["result"]) for _, f in notices] == [("t", "disabled")]
