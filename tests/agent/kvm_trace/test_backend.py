"""The backend against the real tracefs (no guest needed): instance, filter, notices, faults."""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from agent.backends import load_backend
from agent.backends.kvm_trace import KvmTraceBackend
from agent.backends.testing import ListSink
from agent.config import AgentConfig, TraceConfig
from agent.errors import BackendError, CapabilityError, TraceError
from agent.events import Event
from agent.hooks.table import HookTable
from agent.model import Capability
from agent.wire import agent_pb2, hooks_pb2
from tests.agent.kvm_trace.conftest import TRACEFS

IN = hooks_pb2.DIRECTION_IN
HOST = f"t{os.getpid()}"
PIO = "events/kvm/kvm_pio"


class Running:
    """A backend running in a task, with what it delivered and announced."""

    def __init__(self, backend: KvmTraceBackend, table: HookTable) -> None:
        self.backend, self.table = backend, table
        self.sink = ListSink()
        self.notices = self.sink.notices

    @property
    def events(self) -> list[Event]:
        return self.sink.received

    @property
    def batches(self) -> int:
        return len(self.sink.batches)

    def changed(self) -> None:
        self.backend.hooks_changed()


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    backend = KvmTraceBackend(TraceConfig(buffer_kib=64), HOST, lock_dir=tmp_path, rescan_s=0.2)
    async with backend:
        run = Running(backend, HookTable())
        ready = asyncio.Event()
        task = asyncio.create_task(backend.run(run.table, run.sink, ready.set))
        await asyncio.wait_for(ready.wait(), 5)
        yield run
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not backend.instance.path.exists()


def _read(rel: str) -> str:
    return (TRACEFS / "instances" / f"ioin-{HOST}" / rel).read_text().strip()


@pytest.mark.tracefs
async def test_instance_is_set_up_and_removed(running: Running) -> None:
    assert running.backend.instance.path.is_dir()
    assert "[mono]" in _read("trace_clock")
    assert 64 <= int(_read("buffer_size_kb")) < 128  # rounded up to whole pages
    assert _read(f"{PIO}/enable") == "0"  # no hooks: the event is off
    assert "kvm:kvm_pio" not in (TRACEFS / "set_event").read_text()  # top level untouched


@pytest.mark.tracefs
async def test_filter_follows_the_table(running: Running) -> None:
    running.table.set(hooks_pb2.HookSpec(id="rtc", direction=IN, port=0x70))
    running.changed()
    assert _read(f"{PIO}/enable") == "1"
    assert _read(f"{PIO}/filter") == running.backend.filter == "(rw==0&&(((port==0x70))))"
    running.table.set(hooks_pb2.HookSpec(id="all", direction=IN))
    running.changed()
    assert _read(f"{PIO}/filter") == "(rw==0)"
    running.table.remove("rtc")
    running.table.remove("all")
    running.changed()
    assert _read(f"{PIO}/enable") == "0"
    assert running.backend.filter is None


@pytest.mark.tracefs
async def test_pid_that_is_not_a_vm(running: Running) -> None:
    running.table.set(hooks_pb2.HookSpec(id="me", direction=IN, port=0x70, pid=os.getpid()))
    running.changed()
    await asyncio.sleep(0.5)  # rescans do not repeat the notice
    kinds = [(k, f["vm"]) for k, f in running.notices]
    assert kinds == [("not-a-vm", os.getpid())]
    assert running.backend.filter is None  # matches nothing, so nothing is traced


def _flood(marker_path: Path, cpu: int) -> None:
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        with open(marker_path, "w") as marker:
            for i in range(2000):
                marker.write(f"filler {i:06d} " + "x" * 40)
                marker.flush()
    finally:
        os.sched_setaffinity(0, old)


@pytest.mark.tracefs
async def test_lost_events_are_reported(tmp_path: Path) -> None:
    """Overflow a small buffer before the readers start: the first page says events were lost."""
    backend = KvmTraceBackend(TraceConfig(buffer_kib=8), HOST, lock_dir=tmp_path)
    async with backend:
        cpu = backend.cpus[0]
        _flood(backend.instance.path / "trace_marker", cpu)
        run = Running(backend, HookTable())
        task = asyncio.create_task(backend.run(run.table, run.sink, lambda: None))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    lost = [f for k, f in run.notices if k == "lost"]
    assert lost
    assert lost[0]["cpu"] == cpu
    assert backend.counters()["trace_lost"] > 0
    assert backend.counters()["trace_missed_pages"] >= 1
    assert not run.events  # print records are not kvm_pio


@pytest.mark.tracefs
async def test_stale_instances_are_swept(tmp_path: Path) -> None:
    stale = TRACEFS / "instances" / f"ioin-stale{os.getpid()}"
    live = TRACEFS / "instances" / f"ioin-live{os.getpid()}"
    stale.mkdir()
    live.mkdir()
    fd = os.open(tmp_path / f"{live.name}.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a live agent owns this one
    try:
        async with KvmTraceBackend(TraceConfig(), HOST, lock_dir=tmp_path) as backend:
            assert not stale.exists()
            assert live.exists()
            assert stale.name in backend.instance.removed_stale
    finally:
        os.close(fd)
        live.rmdir()


@pytest.mark.tracefs
async def test_same_host_twice_is_refused(tmp_path: Path) -> None:
    async with KvmTraceBackend(TraceConfig(), HOST, lock_dir=tmp_path):
        with pytest.raises(TraceError, match="in use by another ioind"):
            await KvmTraceBackend(TraceConfig(), HOST, lock_dir=tmp_path).__aenter__()


async def test_kernel_without_the_tracepoint(tmp_path: Path) -> None:
    (tmp_path / "instances").mkdir()
    backend = KvmTraceBackend(TraceConfig(tracefs=str(tmp_path)), HOST, lock_dir=tmp_path)
    with pytest.raises(TraceError, match="kvm:kvm_pio") as info:
        await backend.__aenter__()
    assert info.value.path.endswith("events/kvm/kvm_pio")


@pytest.mark.tracefs
def test_no_permission(tmp_path: Path) -> None:
    """As an unprivileged user (a forked child drops to nobody) the error names tracefs."""
    os.chmod(tmp_path, 0o777)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(r)
        try:
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            asyncio.run(KvmTraceBackend(TraceConfig(), HOST, lock_dir=tmp_path).__aenter__())
            msg = "no error"
        except TraceError as e:
            msg = f"{e.errno} {e}"
        except BaseException as e:
            msg = f"other {e!r}"
        os.write(w, msg.encode())
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    with os.fdopen(r) as f:
        msg = f.read()
    assert msg.startswith("13 tracefs /sys/kernel/tracing: no permission"), msg


async def test_misuse_and_capabilities(tmp_path: Path) -> None:
    backend = load_backend(AgentConfig(backend="kvm-trace", host=HOST))
    assert isinstance(backend, KvmTraceBackend)
    observe = {Capability.IN, Capability.OUT, Capability.PID, Capability.CORE, Capability.SCRIPT}
    assert backend.capabilities == observe
    noop: Callable[..., None] = lambda *a: None  # noqa: E731
    with pytest.raises(BackendError, match="unopened"):
        await backend.run(HookTable(), ListSink(), noop)
    with pytest.raises(CapabilityError, match="break"):
        await backend.resume("b1", None)
    with pytest.raises(CapabilityError, match="vms"):
        await backend.start_vm(agent_pb2.VmSpec())


@pytest.mark.tracefs
async def test_not_reusable(tmp_path: Path) -> None:
    backend = KvmTraceBackend(TraceConfig(), HOST, lock_dir=tmp_path)
    async with backend:
        pass
    with pytest.raises(BackendError, match="closed"):
        await backend.__aenter__()


@pytest.mark.tracefs
async def test_pid_filter_follows_threads(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threads of a hooked VM that come and go are added to and dropped from the filter."""
    me = os.getpid()
    monkeypatch.setattr(running.backend.procs, "is_vm", lambda pid: pid == me)  # pose as a VM
    running.table.set(hooks_pb2.HookSpec(id="me", direction=IN, port=0x70, pid=me))
    running.changed()
    assert f"common_pid=={me}" in _read(f"{PIO}/filter")
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    tid = worker.native_id
    try:
        await _until(lambda: f"common_pid=={tid}" in _read(f"{PIO}/filter"))
    finally:
        stop.set()
        worker.join()
    await _until(lambda: f"common_pid=={tid}" not in _read(f"{PIO}/filter"))
    assert running.notices == []


async def _until(cond: Callable[[], bool]) -> None:
    for _ in range(60):  # the rescan runs every 0.2 s here: 3 s is plenty
        if cond():
            return
        await asyncio.sleep(0.05)
    pytest.fail("condition not reached in 3 s")
