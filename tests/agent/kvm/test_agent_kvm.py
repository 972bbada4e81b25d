"""A real ioind running the kvm backend: hooks pushed while its guest runs, events and the
guest's console on the bus."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable

import grpc
import pytest

from agent.backends.kvm.guests.build import Guest
from agent.model import Direction
from agent.wire import agent_pb2, agent_pb2_grpc
from tests.busclient import collect
from tests.harness import AgentProc, Broker


@pytest.mark.kvm
async def test_hooks_set_after_the_guest_started_fire_and_the_console_is_published(
    agent_factory: Callable[..., AgentProc], mosquitto: Broker, guests: dict[str, Guest]
) -> None:
    clock = guests["clock"]
    vm = f'[[kvm.vm]]\nname = "clock"\nimage = "{clock.path}"\nvcpus = 2\n'
    agent = agent_factory("kvm-live", backend="kvm", extra_toml=vm)
    async with collect(mosquitto.port, "ioin/v1/kvm-live/#") as got:
        await asyncio.sleep(0.5)  # the guest is already running when the hooks arrive
        async with grpc.aio.insecure_channel(agent.address) as channel:
            stub = agent_pb2_grpc.AgentStub(channel)
            for command in ("!ioin 0x3f8", "!ioin 0x70 core 1"):
                await stub.SetHook(agent_pb2.SetHookRequest(command=command), timeout=5)
        await asyncio.sleep(2.5)
    serial = [e for e in (g.event for g in got.events) if e.port == 0x3F8]
    rtc = [e for e in (g.event for g in got.events) if e.port == 0x70]
    assert serial, "vCPU 0 reads COM1 about once a second"
    assert {(e.dir, e.vm, e.vm_name, e.vcpu) for e in serial} == {(Direction.IN, 1, "clock", 0)}
    assert rtc, "vCPU 1 reads port 0x70 about five times a second"
    assert {e.vcpu for e in rtc} == {1}
    assert all(e.rip is not None for e in serial + rtc)
    console = b"".join(p for t, p in got.other if t == "ioin/v1/kvm-live/console/clock")
    assert console.count(b":") >= 2, f"the guest prints HH:MM:SS lines, got {console!r}"


@pytest.mark.kvm
async def test_a_break_pauses_the_vcpu_until_ioinctl_resume(
    agent_factory: Callable[..., AgentProc], mosquitto: Broker, guests: dict[str, Guest]
) -> None:
    clock = guests["clock"]
    vm = f'[[kvm.vm]]\nname = "clock"\nimage = "{clock.path}"\nvcpus = 2\n'
    agent = agent_factory("kvm-break", backend="kvm", extra_toml=vm)
    async with collect(mosquitto.port, "ioin/v1/kvm-break/breaks") as got:
        async with grpc.aio.insecure_channel(agent.address) as channel:
            stub = agent_pb2_grpc.AgentStub(channel)
            await stub.SetHook(agent_pb2.SetHookRequest(command="!ioin 0x70 core 1 break"))
        await asyncio.sleep(1.5)  # vCPU 1 reads 0x70 five times a second, but it is paused now
        assert len(got.other) == 1, "one break, then the vCPU waits"
        first = json.loads(got.other[0][1])
        assert (first["vm_name"], first["vcpu"], first["port"]) == ("clock", 1, 0x70)
        resume = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "controller.cli", "resume", agent.address, first["break_id"]],
            *["--value", "0x33", "--insecure"],
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await resume.communicate()
        assert resume.returncode == 0, err.decode()
        await asyncio.sleep(1.0)
    ids = [json.loads(p)["break_id"] for _, p in got.other]
    assert len(ids) == 2, "resumed, it ran on to the next read of 0x70 and paused again"
    assert ids[0] != ids[1]
