"""The real test: SeaBIOS guests under QEMU/KVM, every port 0x70 read accounted for.

The backend's events for each VM are compared with an independent count of that QEMU process's
``kvm_pio`` reads of port 0x70 from a second tracefs instance's text output. Both recorders start
before the guests run (QEMU ``-S``) and stop after the guests are killed, so the window is the
guests' whole life.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.backends.kvm_trace import KvmTraceBackend
from agent.backends.testing import ListSink
from agent.config import TraceConfig
from agent.hooks.table import HookTable
from agent.model import Direction
from agent.wire import hooks_pb2
from tests.agent.kvm_trace.conftest import Guest, TextCounter

RTC_INDEX = 0x70
WINDOW_S = 3.0


@pytest.mark.tracefs
@pytest.mark.qemu
async def test_events_equal_independent_count(
    tmp_path: Path,
    qemu_vm: Callable[..., Guest],
    text_counter: Callable[[str], TextCounter],
) -> None:
    counter = text_counter(f"rw==0&&port=={RTC_INDEX:#x}")
    first = qemu_vm("first", debug_threads=True)  # vCPU threads named "CPU 0/KVM"
    second = qemu_vm("second")  # unnamed threads (QEMU 7's default)
    table = HookTable()
    table.set(hooks_pb2.HookSpec(id="rtc", direction=hooks_pb2.DIRECTION_IN, port=RTC_INDEX))
    table.set(
        hooks_pb2.HookSpec(
            id="first-only", direction=hooks_pb2.DIRECTION_IN, port=RTC_INDEX, pid=first.pid
        )
    )
    sink = ListSink()
    events, notices = sink.received, sink.notices
    backend = KvmTraceBackend(TraceConfig(), f"q{os.getpid()}", lock_dir=tmp_path, rescan_s=0.25)
    async with backend:
        ready = asyncio.Event()
        task = asyncio.create_task(backend.run(table, sink, ready.set))
        await asyncio.wait_for(ready.wait(), 5)
        assert backend.filter is not None
        t0 = time.time_ns()
        first.cont()
        second.cont()
        await asyncio.sleep(WINDOW_S)
        first.kill()
        second.kill()
        await asyncio.sleep(1.0)  # readers drain; the rescan notices the hooked VM is gone
        t1 = time.time_ns()
        counter.stop()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    expected = {g.pid: counter.count(g.pid, f"pio_read at {RTC_INDEX:#x}") for g in (first, second)}
    assert all(n > 0 for n in expected.values()), expected
    assert {e.vm for e in events if e.hook_id == "first-only"} == {first.pid}
    ours = {first.pid, second.pid}  # other KVM guests on the host may read port 0x70 too
    events = [e for e in events if e.vm in ours]
    by_hook_vm = Counter((e.hook_id, e.vm) for e in events)
    assert by_hook_vm[("rtc", first.pid)] == expected[first.pid]
    assert by_hook_vm[("rtc", second.pid)] == expected[second.pid]
    assert by_hook_vm[("first-only", first.pid)] == expected[first.pid]
    assert by_hook_vm[("first-only", second.pid)] == 0
    assert set(by_hook_vm) == {("rtc", first.pid), ("rtc", second.pid), ("first-only", first.pid)}

    names = {e.vm: e.vm_name for e in events}
    assert names == {first.pid: "first", second.pid: "second"}
    assert all(e.dir is Direction.IN and e.port == RTC_INDEX and e.size == 1 for e in events)
    assert all(e.vcpu == 0 and e.cpu in backend.cpus for e in events)
    assert all(t0 <= e.ts <= t1 for e in events)
    assert ("vm-stopped", first.pid) in [(k, f["vm"]) for k, f in notices]
    assert backend.counters()["trace_lost"] == 0
