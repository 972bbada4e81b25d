"""Implementation of the ``sim`` backend (see the package docstring)."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from agent.backends.base import Notify, Sink
from agent.config import SimConfig
from agent.errors import CapabilityError, NotFoundError
from agent.events import Event
from agent.hooks.table import HookRule, HookTable
from agent.model import Capability, Direction, Stage
from agent.wire import agent_pb2

__all__ = ["SimBackend"]

TICK_S = 0.01  # generation granularity: rate * 10 ms accesses per tick


@dataclass(frozen=True, slots=True)
class Access:
    """One simulated port access."""

    dir: Direction
    port: int
    vm: int
    core: int
    value: int


class AccessGenerator:
    """The deterministic part: ``take(n)`` returns the next n accesses for the seed."""

    def __init__(self, config: SimConfig) -> None:
        self._rng = random.Random(config.seed)
        self._ports = list(config.ports)
        self._cum = list(itertools.accumulate(config.ports.values()))
        self._vms = config.vms
        self._cores = config.cores
        self._out = config.out_fraction

    def take(self, n: int) -> list[Access]:
        rng = self._rng
        ports = rng.choices(self._ports, cum_weights=self._cum, k=n)
        return [
            Access(
                Direction.OUT if rng.random() < self._out else Direction.IN,
                port,
                1 + rng.randrange(self._vms),
                rng.randrange(self._cores),
                rng.getrandbits(8),
            )
            for port in ports
        ]


class SimBackend:
    """Simulated VMs (ids 1..vms) with simulated cores (0..cores-1)."""

    name = "sim"
    capabilities = frozenset(Capability) - {Capability.VMS, Capability.REGS}

    def __init__(self, config: SimConfig, *, break_timeout: float = 30.0) -> None:
        self._config = config
        self._gen = AccessGenerator(config)
        self._break_timeout = break_timeout
        self._paused: dict[str, tuple[int, int, float]] = {}  # break id -> (vm, core, deadline)
        self._break_ids = itertools.count(1)
        self._notify: Notify = lambda kind, fields: None
        self.accesses = 0
        self.resumed = 0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._paused.clear()

    async def run(
        self, table: HookTable, sink: Sink, notify: Notify, ready: Callable[[], None]
    ) -> None:
        self._notify = notify
        ready()
        carry = 0.0
        next_tick = time.monotonic()
        while True:
            carry += self._config.rate * TICK_S
            n, carry = int(carry), carry - int(carry)
            self._expire_breaks()
            events = self._step(table, self._gen.take(n)) if n else []
            self.accesses += n
            if events:
                sink(events)
            next_tick += TICK_S
            delay = next_tick - time.monotonic()
            if delay < -1.0:  # far behind (suspended, overloaded): don't try to catch up
                next_tick = time.monotonic()
            await asyncio.sleep(max(delay, 0.0))

    def _step(self, table: HookTable, accesses: list[Access]) -> list[Event]:
        events: list[Event] = []
        paused = {(vm, core) for vm, core, _ in self._paused.values()}
        now = time.time_ns()
        for a in accesses:
            if paused and (a.vm, a.core) in paused:
                continue
            for rule in table.match(a.dir, a.port, a.vm, a.core):
                events.extend(self._fire(rule, a, now))
                if rule.break_:
                    paused.add((a.vm, a.core))
        return events

    def _fire(self, rule: HookRule, a: Access, now: int) -> list[Event]:
        stages = (Stage.PRE, Stage.POST) if rule.stage is Stage.ALL else (rule.stage,)
        if rule.short_circuit:
            stages = (Stage.PRE,)  # no post event for a skipped instruction (HyperDbg)
        out = []
        for stage in stages:
            ev = Event(
                rule.id,
                now,
                a.dir,
                a.port,
                value=a.value,
                vm=a.vm,
                vm_name=f"sim-{a.vm}",
                vcpu=a.core,
                cpu=a.core,
                stage=stage,
            )
            if rule.set_value is not None and (stage is Stage.POST) == (a.dir is Direction.IN):
                ev.value_set = ev.value = rule.set_value & 0xFF
            ev.skipped = rule.short_circuit
            if rule.break_ and stage is stages[-1]:
                ev.break_id = self._pause(rule, a)
            out.append(ev)
        return out

    def _pause(self, rule: HookRule, a: Access) -> str:
        break_id = f"b{next(self._break_ids)}"
        self._paused[break_id] = (a.vm, a.core, time.monotonic() + self._break_timeout)
        fields: dict[str, object] = {
            "break_id": break_id,
            "hook_id": rule.id,
            "vm": a.vm,
            "vm_name": f"sim-{a.vm}",
            "vcpu": a.core,
            "port": a.port,
            "dir": a.dir.label,
            "timeout_s": self._break_timeout,
        }
        self._notify("break", fields)
        return break_id

    def _expire_breaks(self) -> None:
        now = time.monotonic()
        for break_id, (vm, core, deadline) in list(self._paused.items()):
            if now >= deadline:
                del self._paused[break_id]
                self._notify("break-timeout", {"break_id": break_id, "vm": vm, "vcpu": core})

    def hooks_changed(self) -> None:
        """Nothing to rebuild: every access is matched against the live table."""

    def counters(self) -> dict[str, int]:
        return {"sim_accesses": self.accesses, "paused_vcpus": len(self._paused)}

    async def resume(self, break_id: str, value: int | None) -> bool:
        if self._paused.pop(break_id, None) is None:
            return False
        self.resumed += 1
        return True

    async def start_vm(self, spec: agent_pb2.VmSpec) -> agent_pb2.VmInfo:
        raise CapabilityError(Capability.VMS, self.name, "StartVm")

    async def stop_vm(self, vm_id: int) -> agent_pb2.VmInfo:
        if 1 <= vm_id <= self._config.vms:
            raise CapabilityError(Capability.VMS, self.name, "StopVm")
        raise NotFoundError("vm", vm_id)

    def list_vms(self) -> Sequence[agent_pb2.VmInfo]:
        return [
            agent_pb2.VmInfo(id=i, name=f"sim-{i}", state="running", vcpus=self._config.cores)
            for i in range(1, self._config.vms + 1)
        ]
