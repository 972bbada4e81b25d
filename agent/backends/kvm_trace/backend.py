"""Implementation of the ``kvm-trace`` backend (see the package docstring)."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from agent.backends.handoff import Handoff
from agent.backends.kvm_trace.convert import Converter, CpuCounts, clock_offset
from agent.backends.kvm_trace.filter import build_filter, terms_from_rules
from agent.backends.kvm_trace.procs import ProcMap
from agent.backends.kvm_trace.reader import CpuReader
from agent.backends.kvm_trace.ringbuf import EventFormat, PageLayout, RawPage
from agent.backends.kvm_trace.tracefs import DEFAULT_LOCK_DIR, PIO_EVENT, Instance
from agent.config import TraceConfig
from agent.errors import BackendError, CapabilityError, NotFoundError, TraceError
from agent.hooks.table import HookTable
from agent.model import Capability
from agent.notices import Notice, NoticeKind
from agent.sink import EventSink
from agent.wire import agent_pb2

__all__ = ["KvmTraceBackend"]


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class KvmTraceBackend:
    """Observes every VM on the host through a tracefs instance of its own (observe-only)."""

    name = "kvm-trace"
    capabilities = frozenset(
        {Capability.IN, Capability.OUT, Capability.PID, Capability.CORE, Capability.SCRIPT}
    )

    def __init__(
        self,
        config: TraceConfig,
        host: str,
        *,
        lock_dir: Path = DEFAULT_LOCK_DIR,
        proc: Path = Path("/proc"),
        rescan_s: float = 1.0,
    ) -> None:
        self._config = config
        self.instance = Instance(Path(config.tracefs), f"ioin-{host}", lock_dir)
        self.procs = ProcMap(proc)
        self._rescan_s = rescan_s
        self._state = _State.UNOPENED
        self._readers: list[CpuReader] = []
        self._counts: dict[int, CpuCounts] = {}
        self._conv: Converter | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handoff: Handoff | None = None
        self._sink: EventSink | None = None
        self._filter: str | None = None
        self._vm_tids: dict[int, frozenset[int]] = {}
        self._not_vm: set[int] = set()
        self._dropped: dict[int, int] = {}
        self.filter_writes = 0

    @property
    def filter(self) -> str | None:
        """The filter expression in force (``None``: the event is disabled)."""
        return self._filter

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state is not _State.UNOPENED:
            raise BackendError(f"kvm-trace backend is {self._state.value}: not reusable")
        self.instance.create()
        try:
            self._configure()
        except BaseException:
            self.instance.remove()
            raise
        self._state = _State.OPEN
        return self

    def _configure(self) -> None:
        inst = self.instance
        inst.write("tracing_on", "0")
        inst.write("trace_clock", "mono")  # CLOCK_MONOTONIC: mapped to wall clock in convert.py
        inst.write("buffer_size_kb", str(self._config.buffer_kib))
        if inst.exists("buffer_percent"):
            inst.write("buffer_percent", "0")  # wake readers on the first event
        inst.write(f"{PIO_EVENT}/enable", "0")
        try:
            self.fmt = EventFormat.parse(inst.read(f"{PIO_EVENT}/format"))
            self.layout = PageLayout.parse((inst.root / "events/header_page").read_text())
        except (KeyError, ValueError, OSError) as e:
            raise TraceError(str(inst.path / PIO_EVENT / "format"), 0, f"unexpected: {e}") from e
        sub_kb = inst.read("buffer_subbuf_size_kb") if inst.exists("buffer_subbuf_size_kb") else ""
        self.page_size = int(sub_kb) * 1024 if sub_kb.strip() else os.sysconf("SC_PAGE_SIZE")
        self.cpus = sorted(int(p.name[3:]) for p in (inst.path / "per_cpu").glob("cpu*"))
        inst.write("tracing_on", "1")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop_readers()
        if self._state is _State.OPEN:
            self._state = _State.CLOSED
            self.instance.remove()

    # -- running -----------------------------------------------------------------------------

    async def run(self, table: HookTable, sink: EventSink, ready: Callable[[], None]) -> None:
        if self._state is not _State.OPEN:
            raise BackendError(f"kvm-trace backend is {self._state.value}: use 'async with'")
        self._loop = asyncio.get_running_loop()
        self._sink, self._handoff = sink, Handoff(self._loop, sink)
        self._conv = Converter(table, self.procs)
        self._apply_filter()
        for cpu in self.cpus:
            self._counts[cpu] = CpuCounts()
            reader = CpuReader(cpu, self.instance.open_raw(cpu), page_size=self.page_size,
                               fmt=self.fmt, layout=self.layout, on_pages=self._on_pages,
                               on_error=self._on_error)  # fmt: skip
            self._readers.append(reader)
            reader.start()
        ready()
        try:
            while True:
                await asyncio.sleep(self._rescan_s)
                self._maintain()
        finally:
            self._stop_readers()

    def _stop_readers(self) -> None:
        readers, self._readers = self._readers, []
        for reader in readers:
            reader.stop()

    def _on_pages(self, cpu: int, pages: list[RawPage]) -> None:
        """Reader thread: convert, then one hand-over per wake-up (never one per event)."""
        assert self._conv is not None
        assert self._loop is not None
        events, lost = self._conv.convert(cpu, pages, self._counts[cpu])
        with contextlib.suppress(RuntimeError):  # loop closed during shutdown
            if events and self._handoff is not None:
                self._handoff.push(events)
            if self._handoff is not None and (lost or any(p.missed for p in pages)):
                fields: dict[str, object] = {"cpu": cpu, "count": lost, "source": "ring-buffer"}
                self._handoff.notice(Notice(NoticeKind.LOST, fields))

    def _on_error(self, cpu: int, err: OSError) -> None:
        assert self._loop is not None
        path = str(self.instance.path / f"per_cpu/cpu{cpu}/trace_pipe_raw")
        fields: dict[str, object] = {"cpu": cpu, "path": path, "error": str(err)}
        if self._handoff is not None:
            self._handoff.notice(Notice(NoticeKind.BACKEND_ERROR, fields))

    # -- the kernel filter -------------------------------------------------------------------

    def hooks_changed(self) -> None:
        """Rebuild the kernel filter from the table (event loop thread)."""
        if self._conv is not None and self._state is _State.OPEN:
            self._apply_filter()

    def _apply_filter(self) -> None:
        assert self._conv is not None
        rules = self._conv.table.rules()
        pids = {r.pid for r in rules if r.pid is not None}
        self._vm_tids = {pid: self._vm_threads(pid) for pid in pids}
        self._not_vm &= set(self._vm_tids)
        expr = build_filter(terms_from_rules(rules, self._vm_tids))
        if expr == self._filter and self.filter_writes:
            return
        try:
            self._write_filter(expr)
        except TraceError as e:  # keep observing with a coarser (directions-only) filter
            fields = {"path": e.path, "error": str(e), "filter": expr}
            self._notice(Notice(NoticeKind.BACKEND_ERROR, fields))
            expr = build_filter(terms_from_rules(rules, self._vm_tids), limit=0)
            self._write_filter(expr)
        self._filter = expr

    def _write_filter(self, expr: str | None) -> None:
        self.filter_writes += 1
        if expr is None:
            self.instance.write(f"{PIO_EVENT}/enable", "0")
            return
        self.instance.write(f"{PIO_EVENT}/filter", expr)
        if self._filter is None:
            self.instance.write(f"{PIO_EVENT}/enable", "1")

    def _vm_threads(self, pid: int) -> frozenset[int]:
        """The threads of VM ``pid``; a notice (once) when it is not, or no longer, a VM."""
        if self.procs.is_vm(pid):
            self._not_vm.discard(pid)
            return self.procs.tids(pid)
        if pid not in self._not_vm:
            self._not_vm.add(pid)
            was_vm = bool(self._vm_tids.get(pid))
            hooks = [r.id for r in self._conv.table.rules() if r.pid == pid] if self._conv else []
            kind = NoticeKind.VM_STOPPED if was_vm else NoticeKind.NOT_A_VM
            detail = f"pid {pid} is not a KVM VM"
            self._notice(Notice(kind, {"vm": pid, "hooks": hooks, "detail": detail}))
        return frozenset()

    # -- periodic upkeep ---------------------------------------------------------------------

    def _maintain(self) -> None:
        """Every ``rescan_s``: threads that came and went, dropped events, the clock offset."""
        assert self._conv is not None
        self._conv.offset = clock_offset()
        self.procs.refresh()
        if any(self._vm_threads(pid) != tids for pid, tids in self._vm_tids.items()):
            self._apply_filter()
        for rule in self._conv.table.rules():  # scripts run on reader threads: report here
            fields = rule.script.abort_notice() if rule.script is not None else None
            if fields is not None:
                self._notice(Notice(NoticeKind.SCRIPT_ABORT, fields))
        for cpu in self.cpus:  # events the kernel could not store at all (not overwrites)
            dropped = self.instance.cpu_stat(cpu, "dropped events")
            delta, self._dropped[cpu] = dropped - self._dropped.get(cpu, 0), dropped
            if delta > 0:
                self._counts.setdefault(cpu, CpuCounts()).lost += delta
                fields = {"cpu": cpu, "count": delta, "source": "dropped"}
                self._notice(Notice(NoticeKind.LOST, fields))

    def _notice(self, notice: Notice) -> None:
        """A notice from the event loop thread: straight to the sink."""
        if self._sink is not None:
            self._sink.notice(notice)

    def counters(self) -> dict[str, int]:
        counts = list(self._counts.values())
        return {
            "trace_records": sum(c.records for c in counts),
            "trace_events": sum(c.events for c in counts),
            "trace_lost": sum(c.lost for c in counts),
            "trace_missed_pages": sum(c.missed_pages for c in counts),
            "trace_overrun": sum(self.instance.cpu_stat(c, "overrun") for c in self._counts),
            "trace_pages": sum(r.pages for r in self._readers),
            "trace_filter_writes": self.filter_writes,
            "trace_hooked_vms": sum(1 for t in self._vm_tids.values() if t),
            # drops, announced by the agent: the kernel ring buffer's, and the loop hand-off's
            "dropped_ring_buffer": sum(c.lost for c in counts),
            "dropped_handoff": self._handoff.dropped if self._handoff else 0,
            "dropped_notices": self._handoff.dropped_notices if self._handoff else 0,
        }

    # -- not supported: observe-only, does not own VMs ---------------------------------------

    async def resume(self, break_id: str, value: int | None) -> bool:
        raise CapabilityError(Capability.BREAK, self.name, "Resume")

    async def start_vm(self, spec: agent_pb2.VmSpec) -> agent_pb2.VmInfo:
        raise CapabilityError(Capability.VMS, self.name, "StartVm")

    async def stop_vm(self, vm_id: int) -> agent_pb2.VmInfo:
        if any(pid == vm_id for pid, _ in self.procs.find_vms()):
            raise CapabilityError(Capability.VMS, self.name, "StopVm")
        raise NotFoundError("vm", vm_id)

    def list_vms(self) -> Sequence[agent_pb2.VmInfo]:
        """Every KVM VM process on the host (id = host pid)."""
        return [
            agent_pb2.VmInfo(id=pid, name=self.procs.vm_name(pid), state="running", vcpus=n)
            for pid, n in self.procs.find_vms()
        ]
