"""A condition on a real QEMU guest under kvm-trace: pushed into the kernel filter, and the events
equal an independent count of the accesses it accepts (issue 13, items 2 and 5)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.backends.kvm_trace import KvmTraceBackend
from agent.backends.testing import ListSink
from agent.config import TraceConfig
from agent.hooks import lang
from agent.hooks.table import HookTable
from tests.agent.kvm_trace.conftest import Guest, TextCounter

WINDOW_S = 3.0
CONDITION = "$context == 71 && @al != 0"
KERNEL = "(port==0x71)&&((size<=1&&val!=0x0)||size>1)"


def zero_reads(counter: TextCounter, tgid: int) -> int:
    """Reads of 0x71 by ``tgid`` that returned 0 (lines end ``... count 1 val 0x0``)."""
    lines = (counter.path / "trace").read_text().splitlines()
    return sum(
        1
        for line in lines
        if "pio_read at 0x71" in line
        and line.rstrip().endswith("val 0x0")
        and int(line.split("(", 1)[1].split(")", 1)[0]) == tgid
    )


@pytest.mark.tracefs
@pytest.mark.qemu
async def test_a_condition_filters_in_the_kernel_and_matches_an_independent_count(
    tmp_path: Path,
    qemu_vm: Callable[..., Guest],
    text_counter: Callable[[str], TextCounter],
) -> None:
    counter = text_counter("rw==0&&port==0x71")  # SeaBIOS reads CMOS one byte at a time
    guest = qemu_vm("cond")
    table = HookTable()
    hook = f'!ioin 71 pid 0n{guest.pid} condition {{ {CONDITION} }} script {{ printf("%x", @al); }}'
    table.set(lang.parse(hook, hook_id="cmos"))
    sink = ListSink()
    backend = KvmTraceBackend(TraceConfig(), f"s{os.getpid()}", lock_dir=tmp_path, rescan_s=0.25)
    async with backend:
        ready = asyncio.Event()
        task = asyncio.create_task(backend.run(table, sink, ready.set))
        await asyncio.wait_for(ready.wait(), 5)
        assert backend.filter is not None
        assert f"({KERNEL})" in backend.filter  # the condition is in the kernel's filter
        guest.cont()
        await asyncio.sleep(WINDOW_S)
        guest.kill()
        await asyncio.sleep(1.0)  # the readers drain
        counter.stop()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    total = counter.count(guest.pid, "pio_read at 0x71")
    want = total - zero_reads(counter, guest.pid)
    assert 0 < want < total, (want, total)  # the condition keeps some reads and drops others
    events = [e for e in sink.received if e.hook_id == "cmos"]
    assert len(events) == want
    assert all(e.value != 0 and e.output == f"{e.value:x}" for e in events)
    assert backend.counters()["trace_records"] <= want + 16  # refused reads never reached us
