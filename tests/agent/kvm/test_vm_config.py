"""``[[kvm.vm]]`` tables: validated with the rest of the config, defaults in one place, address 0.

``check-config`` must report every problem of a VM table before the VM is ever started; the
StartVm RPC and ``ioind local`` take their defaults from :class:`~agent.config.VmConfig`; and a
flat image can be loaded at guest-physical 0 (a ``load_addr`` of 0 is an address, not "unset").
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.backends.kvm.backend import vm_config
from agent.backends.kvm.guests.build import Guest
from agent.config import VmConfig, parse_config
from agent.errors import ConfigError
from agent.hooks.table import HookTable
from agent.model import Direction
from agent.wire import agent_pb2
from tests.agent.kvm.conftest import Collector, MakeVm, spec, wait_state

BOGUS = {"name": "bad", "mode": "bogus", "vcpus": 999, "mem_mib": 0}

# Position-independent: runs wherever it is loaded. The IN sits 3 bytes in (after `mov $0x71,%dx`).
AT_ZERO = """# mode: real
        .code16
        .globl _start
_start: mov     $0x71, %dx
        in      %dx, %al
        cli
        hlt
"""


def problems(*vms: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config({"grpc": {"insecure": True}, "kvm": {"vm": list(vms)}})
    return info.value.problems


def test_every_problem_of_a_vm_table_is_reported() -> None:
    assert problems(BOGUS) == [
        "kvm.vm[0].image: give exactly one of image and bios (neither given)",
        "kvm.vm[0].mode: one of real, protected, long, got 'bogus'",
        "kvm.vm[0].vcpus: 999 out of range 1..64",
        "kvm.vm[0].mem_mib: 0 out of range 1..3072",
    ]


def test_addresses_names_and_duplicates_are_checked() -> None:
    good: dict[str, object] = {"name": "ok", "image": "a.bin"}
    found = problems(
        good,
        {"name": "ok", "image": "b.bin", "bios": "c.bin"},
        {"name": "Big/VM", "image": "d.bin", "mem_mib": 1, "load_addr": 0x100000},
        {"name": "far", "image": "e.bin", "entry": 0x100000},
    )
    assert found == [
        "kvm.vm[1].image: give exactly one of image and bios (both given)",
        "kvm.vm[1].name: 'ok' is already the name of another vm",
        "kvm.vm[2].name: 'Big/VM' must match [a-z0-9][a-z0-9._-]{0,63}",
        "kvm.vm[2].load_addr: 0x100000 outside the guest's RAM (0..0x100000)",
        "kvm.vm[3].entry: 0x100000 outside 0..0x100000 (real mode)",
    ]
    vm = {"name": "z", "image": "a.bin", "load_addr": 0}
    zero = parse_config({"grpc": {"insecure": True}, "kvm": {"vm": [vm]}})
    assert zero.kvm.vms[0].load_addr == 0


def test_check_config_names_every_vm_problem(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    vm = 'name = "bad"\nmode = "bogus"\nvcpus = 999\nmem_mib = 0\n'
    path.write_text(f"[grpc]\ninsecure = true\n[[kvm.vm]]\n{vm}")
    cmd = [sys.executable, "-m", "agent", "check-config", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode != 0
    for key in ("image", "mode", "vcpus", "mem_mib"):
        assert f"kvm.vm[0].{key}:" in done.stderr + done.stdout


def test_start_vm_requests_take_the_vm_config_defaults() -> None:
    unset = vm_config(agent_pb2.VmSpec(image="g.bin"), "vm7")
    assert unset == VmConfig(name="vm7", image="g.bin")
    at_zero = vm_config(agent_pb2.VmSpec(name="z", image="g.bin", load_addr=0, entry=0), "vm8")
    assert (at_zero.name, at_zero.load_addr, at_zero.entry) == ("z", 0, 0)


@pytest.mark.kvm
def test_a_flat_image_runs_from_address_zero(
    make_vm: MakeVm, asm: Callable[[str, str], Guest], collector: Collector
) -> None:
    table = HookTable()
    table.set(spec(id="rtc", direction=Direction.IN, port=0x71))
    vm = make_vm(asm(AT_ZERO, "at_zero"), table=table, load_addr=0, entry=0)
    assert wait_state(vm, "halted")
    assert collector.wait(lambda: len(collector.all_events()) == 1)
    (event,) = collector.all_events()
    assert (event.hook_id, event.rip) == ("rtc", 3)
