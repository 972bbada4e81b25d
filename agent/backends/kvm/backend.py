"""The ``kvm`` backend object: the Backend Protocol over :class:`~.machine.Machine` VMs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Self

import structlog

from agent.backends.handoff import Handoff
from agent.backends.kvm import fast
from agent.backends.kvm._kvm import Kvm
from agent.backends.kvm.commands import Breaks, Flush, Resume, install_kick_handler
from agent.backends.kvm.context import FLUSH_SECONDS
from agent.backends.kvm.machine import Machine
from agent.config import KvmConfig, VmConfig
from agent.errors import BackendError, NotFoundError
from agent.hooks.table import HookTable
from agent.model import Capability
from agent.notices import Notice, NoticeKind
from agent.script.hook import HookScript
from agent.sink import EventSink
from agent.wire import agent_pb2

__all__ = ["KvmBackend", "vm_config"]

log = structlog.get_logger("ioind.kvm")

HOUSEKEEPING_SECONDS = 0.01  # how often stale per-thread event buffers are flushed
IDLE_SECONDS = 1.0  # with no VM running there is nothing to flush: wake this seldom


def vm_config(spec: agent_pb2.VmSpec, name: str) -> VmConfig:
    """A StartVm request as a VmConfig: unset fields take VmConfig's defaults (the one place they
    are written); ``name`` when the request has none."""
    d = VmConfig(name=spec.name or name)
    return replace(
        d, image=spec.image, bios=spec.bios, mode=spec.mode or d.mode,
        load_addr=spec.load_addr if spec.HasField("load_addr") else d.load_addr,
        entry=spec.entry if spec.HasField("entry") else d.entry,
        vcpus=spec.vcpus or d.vcpus, mem_mib=spec.mem_mib or d.mem_mib,
    )  # fmt: skip


class KvmBackend:
    """ioind as a micro-VMM: VMs from the config (ids from 1) and from StartVm."""

    name = "kvm"
    capabilities = frozenset(Capability)

    def __init__(self, config: KvmConfig, *, device: str = "/dev/kvm") -> None:
        self.config = config
        self.device = device
        self.machines: dict[int, Machine] = {}
        self.breaks = Breaks()
        self._kvm: Kvm | None = None
        self._next_id = 1
        self._table: HookTable | None = None
        self._scripts: tuple[HookScript, ...] = ()  # the table's scripts, for abort notices
        self._scripts_version = -1
        self._outlet: Handoff | None = None
        self._closed = False
        self._fast: fast.FastLib | None = None
        self.fast_path_reason = "off in the configuration"  # why the C loop is not used

    @property
    def fast_path(self) -> bool:
        """True if vCPUs run the C fast path (see fast.py)."""
        return self._fast is not None

    async def __aenter__(self) -> Self:
        if self._kvm is not None or self._closed:
            raise BackendError("kvm backend: not reentrant and not reusable after close")
        install_kick_handler()
        self._kvm = Kvm(self.device)
        if self.config.fast_path:
            self._fast, self.fast_path_reason = await asyncio.to_thread(fast.load)
            if self._fast is None:
                log.warning("kvm fast path unavailable", reason=self.fast_path_reason)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop_all()
        self._closed = True
        if self._kvm is not None:
            self._kvm.close()
            self._kvm = None

    async def run(self, table: HookTable, sink: EventSink, ready: Callable[[], None]) -> None:
        """Start the configured VMs, then flush stale event buffers until cancelled."""
        self._table = table
        self._outlet = Handoff(asyncio.get_running_loop(), sink)
        try:
            for cfg in self.config.vms:
                self._start(cfg)
            ready()
            while True:  # an agent with no VM costs a wake-up a second (bench/bench_idle.py)
                await asyncio.sleep(HOUSEKEEPING_SECONDS if self.machines else IDLE_SECONDS)
                self._flush_stale()
                self._announce_aborts(table)
        finally:
            await self._stop_all()

    def _announce_aborts(self, table: HookTable) -> None:
        """A ``script-abort`` notice per hook whose runs aborted on a vCPU thread (budget,
        division by zero, unmapped memory): at most one a second per hook (``abort_notice``)."""
        if self._scripts_version != table.version:
            self._scripts = tuple(r.script for r in table.rules() if r.script is not None)
            self._scripts_version = table.version
        for hs in self._scripts:
            fields = hs.abort_notice()
            if fields is not None and self._outlet is not None:
                self._outlet.notice(Notice(NoticeKind.SCRIPT_ABORT, fields))

    def _flush_stale(self) -> None:
        now = time.monotonic()
        for machine in list(self.machines.values()):
            for runner in machine.runners:
                if runner.ctx.stale(now, 2 * FLUSH_SECONDS):
                    runner.send(Flush())

    def _start(self, cfg: VmConfig) -> Machine:
        if self._kvm is None or self._outlet is None:
            raise BackendError("kvm backend: VMs start only while run() is active")
        vm_id, self._next_id = self._next_id, self._next_id + 1
        machine = Machine(
            self._kvm, vm_id, cfg, table=self._table, outlet=self._outlet, breaks=self.breaks,
            break_timeout=self.config.break_timeout, on_fault=self.config.on_fault,
            flood_limit=self.config.flood_limit or None, fast=self._fast,
        )  # fmt: skip
        self.machines[vm_id] = machine
        machine.start()
        return machine

    async def _stop_all(self) -> None:
        machines = [m for m in self.machines.values() if not m.stopped]
        if machines:
            await asyncio.gather(*(asyncio.to_thread(m.stop) for m in machines))

    def hooks_changed(self) -> None:
        """Kick every vCPU: the C loop answers exits without looking at the table, so it must
        come back to Python to pick up the new plans (the Python loop would see the table's
        version on its next exit anyway)."""
        for machine in self.machines.values():
            for runner in machine.runners:
                runner.kick()

    def counters(self) -> dict[str, int]:
        runners = [r for m in self.machines.values() for r in m.runners]
        open_reads = sum(sum(m.bus.open_bus_reads) for m in self.machines.values())
        open_writes = sum(sum(m.bus.open_bus_writes) for m in self.machines.values())
        return {
            "kvm_vms": len(self.machines),
            "kvm_exits": sum(r.exits for r in runners),
            "kvm_io_exits": sum(r.io_exits for r in runners),
            "kvm_open_bus_reads": open_reads,
            "kvm_open_bus_writes": open_writes,
            "kvm_paused_vcpus": len(self.breaks),
            "kvm_fast_path": int(self.fast_path),
            "dropped_handoff": self._outlet.dropped if self._outlet else 0,
            "dropped_notices": self._outlet.dropped_notices if self._outlet else 0,
        }

    async def resume(self, break_id: str, value: int | None) -> bool:
        runner = self.breaks.take(break_id)
        if runner is None:
            return False
        runner.send(Resume(break_id, value), kick=False)
        return True

    async def start_vm(self, spec: agent_pb2.VmSpec) -> agent_pb2.VmInfo:
        machine = await asyncio.to_thread(self._start, vm_config(spec, f"vm{self._next_id}"))
        return machine.info()

    async def stop_vm(self, vm_id: int) -> agent_pb2.VmInfo:
        machine = self.machines.get(vm_id)
        if machine is None:
            raise NotFoundError("vm", vm_id)
        await asyncio.to_thread(machine.stop)
        return machine.info()

    def list_vms(self) -> Sequence[agent_pb2.VmInfo]:
        return [m.info() for m in self.machines.values()]
