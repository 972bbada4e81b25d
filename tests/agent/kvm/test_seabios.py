"""A real third-party guest: Debian's SeaBIOS boots to its final "No bootable device" state."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.hooks.table import HookTable
from agent.model import Direction, Stage
from tests.agent.kvm.conftest import Collector, MakeVm, spec

pytestmark = pytest.mark.kvm

BIOS = Path("/usr/share/seabios/bios.bin")


@pytest.mark.skipif(not BIOS.exists(), reason=f"{BIOS} missing (apt install seabios)")
def test_seabios_boots_to_no_bootable_device(make_vm: MakeVm, collector: Collector) -> None:
    table = HookTable()  # the `!ioin 0x71 stage post` of the issue
    table.set(spec(id="cmos", direction=Direction.IN, port=0x71, stage=Stage.POST))
    vm = make_vm(bios=str(BIOS), mem_mib=64, table=table, on_fault="stop", name="seabios")
    assert collector.wait(lambda: any("No bootable device" in line for line in vm.console), 60)
    console = list(vm.console)
    assert console[0].startswith("SeaBIOS (version")
    assert "RamSize: 0x04000000 [cmos]" in console  # sized from the CMOS bytes 0x34/0x35
    assert "Running on QEMU (i440fx)" in console  # found our host bridge
    assert vm.state == "running"  # waiting to retry, not faulted
    reads = [e for e in collector.all_events() if e.hook_id == "cmos"]
    assert reads
    assert all(e.port == 0x71 and e.dir is Direction.IN and e.vm_name == "seabios" for e in reads)
    assert not collector.kinds("vm-fault")
