"""``ioind local --backend kvm-trace`` works like the other backends, against a real QEMU."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable

import pytest

from tests.agent.kvm_trace.conftest import Guest


@pytest.mark.tracefs
@pytest.mark.qemu
async def test_ioind_local_prints_a_qemu_guests_port_io(qemu_vm: Callable[..., Guest]) -> None:
    guest = qemu_vm("local-seabios")
    cmd = [
        sys.executable,
        "-m",
        "agent",
        "local",
        "--backend",
        "kvm-trace",
        "-o",
        "json",
        "--hook",
        f"!ioout 0x70 pid 0n{guest.pid}",
        "--seconds",
        "5",
    ]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    await asyncio.sleep(2.0)  # the instance and its filter are set up
    guest.cont()  # SeaBIOS boots and programs the RTC through port 0x70
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    events = [json.loads(line) for line in out.decode().splitlines()]
    assert events, f"no events; stderr: {err.decode()[-1000:]}"
    assert {(e["dir"], e["port"], e["vm"], e["vm_name"]) for e in events} == {
        ("out", 0x70, guest.pid, "local-seabios")
    }
    assert sorted(e["seq"] for e in events) == list(range(1, len(events) + 1))
