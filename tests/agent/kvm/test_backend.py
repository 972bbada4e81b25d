"""The Backend Protocol over real VMs: run(), batches on the loop, RPCs, resume, counters, stop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from agent.backends import Backend, load_backend
from agent.backends.kvm import KvmBackend
from agent.backends.kvm.guests.build import Guest
from agent.backends.testing import ListSink
from agent.columns import Block
from agent.config import AgentConfig, KvmConfig, VmConfig
from agent.errors import NotFoundError
from agent.events import Event
from agent.hooks import lang
from agent.hooks.table import HookTable
from agent.model import Capability, Direction, Stage
from agent.notices import Notice, NoticeKind
from agent.wire import agent_pb2
from tests.agent.kvm.conftest import spec

pytestmark = pytest.mark.kvm


class LoopSink(ListSink):
    """A ListSink that checks it is called on the event loop thread."""

    def events(self, events: list[Event]) -> None:
        asyncio.get_running_loop()  # raises unless called on the loop thread
        super().events(events)

    def blocks(self, blocks: list[Block]) -> None:
        asyncio.get_running_loop()
        super().blocks(blocks)

    def notice(self, notice: Notice) -> None:
        asyncio.get_running_loop()
        super().notice(notice)


class Agent:
    """What the agent gives run(): the sink and ready — recording, with the loop thread checked."""

    def __init__(self) -> None:
        self.sink = LoopSink()
        self.batches = self.sink.batches
        self.notices = self.sink.notices
        self.ready = asyncio.Event()

    def events(self) -> list[Event]:
        return [e for b in self.batches for e in b]

    async def until(self, predicate: object, limit: float = 10.0) -> None:
        deadline = time.monotonic() + limit
        while not predicate():  # type: ignore[operator]
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.01)


def vm(guest: Guest, name: str, **kw: object) -> VmConfig:
    return VmConfig(name=name, image=str(guest.path), mode=guest.mode, entry=guest.entry, **kw)  # type: ignore[arg-type]


def test_create_via_load_backend() -> None:
    backend = load_backend(AgentConfig(backend="kvm"))
    assert isinstance(backend, KvmBackend)
    assert isinstance(backend, Backend)
    assert backend.capabilities == frozenset(Capability)


async def test_run_starts_configured_vms_and_batches_events(guests: dict[str, Guest]) -> None:
    table = HookTable()
    table.set(spec(id="lsr", direction=Direction.IN, port=0x3FD, stage=Stage.POST))
    config = KvmConfig(vms=(vm(guests["serial"], "ser"), vm(guests["cmos"], "clock")))
    agent = Agent()
    async with KvmBackend(config) as backend:
        task = asyncio.create_task(backend.run(table, agent.sink, agent.ready.set))
        await asyncio.wait_for(agent.ready.wait(), 10)
        await agent.until(lambda: len([k for k, _ in agent.notices if k == "vm-halted"]) == 2)
        await agent.until(lambda: len(agent.events()) >= 6 + 9)  # 6 + 9 LSR polls
        infos = {i.name: i for i in backend.list_vms()}
        assert {i.id for i in infos.values()} == {1, 2}
        assert infos["ser"].state == "halted"
        assert infos["ser"].exits > 0
        consoles = [(f["vm_name"], f["text"]) for k, f in agent.notices if k == "console"]
        assert ("ser", "hello") in consoles
        assert {e.vm_name for e in agent.events()} == {"ser", "clock"}
        assert all(e.value & 0x20 for e in agent.events())  # LSR: THR empty
        assert len(agent.batches) < len(agent.events())  # batched, not one call per event
        counters = backend.counters()
        assert counters["kvm_exits"] >= 15
        assert counters["kvm_vms"] == 2
        task.cancel()
        started = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 1.0
        assert {i.state for i in backend.list_vms()} == {"stopped"}


async def test_start_stop_vm_rpcs_and_resume(guests: dict[str, Guest], tmp_path: Path) -> None:
    table = HookTable()
    table.set(spec(id="brk", direction=Direction.IN, port=0x100, break_=True))
    agent = Agent()
    async with KvmBackend(KvmConfig(break_timeout=30)) as backend:
        task = asyncio.create_task(backend.run(table, agent.sink, agent.ready.set))
        await agent.ready.wait()
        vm_spec = agent_pb2.VmSpec(name="two", image=str(guests["two_vcpu"].path), vcpus=2)
        info = await backend.start_vm(vm_spec)
        assert (info.id, info.name, info.vcpus) == (1, "two", 2)
        await agent.until(lambda: any(k == "break" for k, _ in agent.notices))
        brk = next(f for k, f in agent.notices if k == "break")
        assert backend.list_vms()[0].state == "paused"
        assert await backend.resume(str(brk["break_id"]), None)
        assert not await backend.resume(str(brk["break_id"]), None)  # no longer pending
        assert not await backend.resume("nope", None)
        for _ in range(2):  # the other two reads of vCPU 0 break too
            await agent.until(lambda: len([k for k, _ in agent.notices if k == "break"]) > _ + 1)
            f = [f for k, f in agent.notices if k == "break"][_ + 1]
            assert await backend.resume(str(f["break_id"]), 7)
        stopped = await backend.stop_vm(1)
        assert stopped.state in ("stopped", "halted")
        with pytest.raises(NotFoundError):
            await backend.stop_vm(9)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_script_aborts_on_vcpu_threads_are_announced(guests: dict[str, Guest]) -> None:
    """Division by zero in a script and in a condition (which the C loop must not swallow)."""
    table = HookTable()
    table.set(lang.parse("!ioin 3fd script { x = 1 / ($context - 3fd); }", hook_id="zs"))
    table.set(lang.parse("!ioin 3fd condition { @al / (@al - @al) == 0 }", hook_id="zc"))
    agent = Agent()
    async with KvmBackend(KvmConfig(vms=(vm(guests["serial"], "ser"),))) as backend:
        task = asyncio.create_task(backend.run(table, agent.sink, agent.ready.set))
        await asyncio.wait_for(agent.ready.wait(), 10)

        def announced() -> set[object]:
            return {f["hook_id"] for k, f in agent.notices if k == NoticeKind.SCRIPT_ABORT}

        await agent.until(lambda: announced() == {"zs", "zc"})
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    reasons = {f["reason"] for k, f in agent.notices if k == NoticeKind.SCRIPT_ABORT}
    assert reasons == {"division by zero"}
    assert all(r.script is not None and r.script.aborts > 0 for r in table.rules())
