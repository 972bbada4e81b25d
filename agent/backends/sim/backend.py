"""Implementation of the ``sim`` backend (see the package docstring)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Self

from agent.backends.sim.generator import Access, AccessGenerator, tick_of
from agent.backends.sim.scripted import acting_hit, is_plain, scripted_hit
from agent.columns import F_OUT, Block
from agent.config import SimConfig
from agent.errors import CapabilityError, NotFoundError
from agent.events import Event
from agent.hooks.table import HookRule, HookTable
from agent.model import Capability, Direction
from agent.notices import Notice, NoticeKind
from agent.script.hit import filter_block
from agent.script.hook import HookScript
from agent.sink import EventSink
from agent.wire import agent_pb2

__all__ = ["SimBackend"]

CHUNK = 2048  # accesses generated between two yields to the event loop
CACHE_MAX = 1 << 16  # (flags, port, vm, core) -> rules entries kept between table changes
# A step with scripted hooks runs in a worker thread and stops taking accesses after this long
# (the rest of its accesses are shed, counted): a script slows its simulated guest, as a slow
# script slows a kvm vCPU, and never the agent's loop (one run may take 1,000,000 steps).
SCRIPT_SLICE_S = 0.1
# While no enabled hook can match a port the simulated guests touch, the loop wakes this
# seldom, or at once when the hooks change, and only counts the accesses the guests made
# meanwhile (nothing could see them: they are not drawn, matched or built). An agent whose hooks
# match nothing then costs what an idle one does at any rate, not a wake-up per 10 ms
# (bench/bench_idle.py).
UNOBSERVED_TICK_S = 1.0
IN, OUT = Direction.IN, Direction.OUT
SIZE_1 = 1 << 1  # EventColumns.flags: size 1 (bits 1-3), pre stage, no other bit
FLAGS_IN, FLAGS_OUT = SIZE_1, SIZE_1 | F_OUT


Key = tuple[int, int, int, int]  # (EventColumns flags, port, vm, core)
Row = tuple[Key, int]  # an access of a plain hook: (key, value)


class SimBackend:
    """Simulated VMs (ids 1..vms) with simulated cores (0..cores-1)."""

    name = "sim"
    capabilities = frozenset(Capability) - {Capability.VMS, Capability.REGS, Capability.MEMORY}

    def __init__(self, config: SimConfig, *, break_timeout: float = 30.0) -> None:
        self._config = config
        self._gen = AccessGenerator(config)
        self._break_timeout = break_timeout
        self._paused: dict[str, tuple[int, int, float]] = {}  # break id -> (vm, core, deadline)
        self._break_ids = itertools.count(1)
        self.accesses = 0
        self.resumed = 0
        self._names = [f"sim-{i}" for i in range(config.vms + 1)]
        # (flags, port, vm, core) -> (row appenders of logging-only hooks, hooks with actions)
        self._cache: dict[Key, tuple[tuple[Callable[[Row], None], ...], tuple[HookRule, ...]]] = {}
        self._cache_version = -1
        self._plain: set[str] = set()  # hooks that only log, at the pre stage: the fast path
        self._plain_version = -1
        self._rows: dict[str, list[Row]] = {}  # plain hook id -> this step's rows
        self._scripts: dict[str, HookScript] = {}  # hook id -> its compiled condition / script
        self._scripted = False  # an acting hook runs a script: steps go to a worker thread
        self._notices: list[Notice] = []  # held by a step, delivered on the loop after it
        self.shed = 0  # accesses a step did not take: its scripts used up SCRIPT_SLICE_S
        self._unobserved_version = -1
        self._unobserved = False
        self._changed = asyncio.Event()  # set by hooks_changed (on the loop)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._paused.clear()

    async def run(self, table: HookTable, sink: EventSink, ready: Callable[[], None]) -> None:
        """Generate at ``rate``; plain hits go to ``sink`` as blocks, others as events."""
        ready()
        carry = 0.0
        busy_tick = tick_of(self._config.rate)
        next_tick = time.monotonic()
        while True:
            self._changed.clear()
            if self._nothing_can_match(table):
                started = time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), UNOBSERVED_TICK_S)
                carry += self._config.rate * (time.monotonic() - started)
                self.accesses += int(carry)
                carry -= int(carry)
                next_tick = time.monotonic()
                continue
            carry += self._config.rate * busy_tick
            n, carry = int(carry), carry - int(carry)
            self._expire_breaks()
            await self._generate(table, sink, n)
            self._deliver(sink)
            self.accesses += n
            next_tick += busy_tick
            delay = next_tick - time.monotonic()
            if delay < -1.0:  # far behind (suspended, overloaded): don't try to catch up
                next_tick = time.monotonic()
            await asyncio.sleep(max(delay, 0.0))

    async def _generate(self, table: HookTable, sink: EventSink, n: int) -> None:
        for chunk in range(0, n, CHUNK):  # share the loop with the pipeline and publisher
            blocks, events = await self._stepped(table, min(CHUNK, n - chunk))
            if blocks:
                sink.blocks(blocks)
            if events:
                sink.events(events)
            self._deliver(sink)
            if n > CHUNK:
                await asyncio.sleep(0)

    async def _stepped(self, table: HookTable, n: int) -> tuple[list[Block], list[Event]]:
        """A step: on the loop (the hot path), or with scripted hooks in a worker thread, so
        no script can hold the loop (gRPC, the publisher) for more than a thread switch."""
        if self._cache_version != table.version or len(self._cache) > CACHE_MAX:
            self._refresh(table)
        if not self._scripted:
            return self._step(table, n)
        deadline = time.monotonic() + SCRIPT_SLICE_S
        return await asyncio.to_thread(self._step, table, n, deadline)

    def _nothing_can_match(self, table: HookTable) -> bool:
        """No enabled hook is on a port the simulated guests touch (nor on every port)."""
        if self._unobserved_version != table.version:
            ports = set(self._config.ports)
            hooked = [table.hooked_ports(d) for d in (IN, OUT)]
            self._unobserved = all(h is not None and not h & ports for h in hooked)
            self._unobserved_version = table.version
        return self._unobserved and not self._paused

    def _deliver(self, sink: EventSink) -> None:
        """The notices steps held (breaks, script aborts), on the loop."""
        self._announce_aborts()
        notices, self._notices = self._notices, []
        for notice in notices:
            sink.notice(notice)

    def _step(
        self, table: HookTable, n: int, deadline: float | None = None
    ) -> tuple[list[Block], list[Event]]:
        """Generate ``n`` accesses; the blocks and events they trigger (the hot path).

        A plain hit costs one row appended to its hook's list; blocks are built per step, so
        within a step each plain hook's events are numbered together, ahead of the events.
        Past ``deadline`` (monotonic), checked after each hit of an acting hook, the step
        takes no more accesses (they are shed, counted in ``shed``).
        """
        ports, words = self._gen.columns(n)
        if self._cache_version != table.version or len(self._cache) > CACHE_MAX:
            self._refresh(table)
        cache, gen = self._cache, self._gen
        out_below, vms, cores = gen.out_below, gen.vms, gen.cores
        paused = {(vm, core) for vm, core, _ in self._paused.values()}
        now = time.time_ns()
        events: list[Event] = []
        for i, (port, w) in enumerate(zip(ports, words, strict=True)):
            f = FLAGS_OUT if (w >> 40) & 0xFFFF < out_below else FLAGS_IN
            vm = 1 + ((w >> 24) & 0xFFFF) % vms
            core = ((w >> 8) & 0xFFFF) % cores
            key = (f, port, vm, core)
            entry = cache.get(key)
            if entry is None:
                entry = cache[key] = self._classify(table, key)
            adds, acting = entry
            if (not adds and not acting) or (paused and (vm, core) in paused):
                continue
            if adds:
                row = (key, w & 0xFF)
                for add in adds:
                    add(row)
            for rule in acting:
                if self._fire(rule, gen.access(port, w), now, events):
                    paused.add((vm, core))
            if deadline is not None and acting and time.monotonic() > deadline:
                self.shed += n - i - 1
                break
        return self._blocks(now), events

    def _refresh(self, table: HookTable) -> None:
        self._cache.clear()
        self._cache_version = table.version
        if self._plain_version != table.version:
            self._plain = {r.id for r in table.rules() if is_plain(r)}
            self._scripts = {r.id: r.script for r in table.rules() if r.script is not None}
            self._scripted = any(i not in self._plain for i in self._scripts)
            self._plain_version = table.version
        self._rows = {hook_id: [] for hook_id in self._plain}

    def _blocks(self, now: int) -> list[Block]:
        """This step's rows as one block per plain hook (transposed with ``zip``, in C)."""
        blocks = []
        names = self._names
        for hook_id, rows in self._rows.items():
            if not rows:
                continue
            keys, values = zip(*rows, strict=True)
            flags, ports, vms, cores = zip(*keys, strict=True)
            n = len(rows)
            rows.clear()
            block = Block(
                hook_id,
                [now] * n,
                list(ports),
                list(values),
                list(vms),
                list(map(names.__getitem__, vms)),
                list(cores),
                list(cores),
                [1] * n,
                list(flags),
            )
            hs = self._scripts.get(hook_id)
            kept = filter_block(hs, block) if hs is not None else block
            if kept is not None:
                blocks.append(kept)
        return blocks

    def _classify(
        self, table: HookTable, key: Key
    ) -> tuple[tuple[Callable[[Row], None], ...], tuple[HookRule, ...]]:
        """Split the rules an access triggers: row appenders of those that only log, the others."""
        f, port, vm, core = key
        rules = table.match(OUT if f & F_OUT else IN, port, vm, core)
        return (
            tuple(self._rows[r.id].append for r in rules if r.id in self._plain),
            tuple(r for r in rules if r.id not in self._plain),
        )

    def _fire(self, rule: HookRule, a: Access, now: int, out: list[Event]) -> bool:
        """Append the events of one hit of an acting hook to ``out``; True if it paused."""
        if rule.script is not None:
            events, pause = scripted_hit(rule, rule.script, a, now)
        else:
            events, pause = acting_hit(rule, a, now)
        if pause and events:
            events[-1].break_id = self._pause(rule, a)
        out.extend(events)
        return pause and bool(events)

    def _announce_aborts(self) -> None:
        """A ``script-abort`` notice per hook whose runs aborted (at most one a second)."""
        for hs in self._scripts.values():
            fields = hs.abort_notice()
            if fields is not None:
                self._notice(NoticeKind.SCRIPT_ABORT, fields)

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
        self._notice(NoticeKind.BREAK, fields)
        return break_id

    def _expire_breaks(self) -> None:
        now = time.monotonic()
        for break_id, (vm, core, deadline) in list(self._paused.items()):
            if now >= deadline:
                del self._paused[break_id]
                fields = {"break_id": break_id, "vm": vm, "vcpu": core}
                self._notice(NoticeKind.BREAK_TIMEOUT, fields)

    def _notice(self, kind: NoticeKind, fields: dict[str, object]) -> None:
        """Held until the step is over (a step may run in a worker thread)."""
        self._notices.append(Notice(kind, fields))

    def hooks_changed(self) -> None:
        """Every access is matched against the live table: nothing to rebuild, but a loop
        waiting while no hook could match wakes now."""
        self._changed.set()

    def counters(self) -> dict[str, int]:
        return {
            "sim_accesses": self.accesses,
            "sim_accesses_shed": self.shed,
            "paused_vcpus": len(self._paused),
        }

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
