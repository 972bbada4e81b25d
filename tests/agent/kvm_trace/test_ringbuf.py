"""The ring-buffer page parser: pages built by hand, then real pages from live instances."""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.backends.kvm_trace.ringbuf import EventFormat, PageLayout, RawPage, parse_page
from tests.agent.kvm_trace.conftest import TRACEFS

PIO_FORMAT = """name: kvm_pio
ID: 110
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:unsigned int rw;\toffset:8;\tsize:4;\tsigned:0;
\tfield:unsigned int port;\toffset:12;\tsize:4;\tsigned:0;
\tfield:unsigned int size;\toffset:16;\tsize:4;\tsigned:0;
\tfield:unsigned int count;\toffset:20;\tsize:4;\tsigned:0;
\tfield:unsigned int val;\toffset:24;\tsize:4;\tsigned:0;
"""
HEADER_PAGE = """\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;
\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;
\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;
\tfield: char data;\toffset:16;\tsize:4080;\tsigned:0;
"""
FMT = EventFormat.parse(PIO_FORMAT)


# -- building pages the way kernel/trace/ring_buffer.c lays them out ---------------------------


def _word(type_len: int, delta: int) -> bytes:
    return struct.pack("<I", (delta << 5) | type_len)


def pio(pid: int, rw: int, port: int, val: int, *, event_id: int = 110, pad: int = 0) -> bytes:
    return struct.pack("<HBBiIIIII", event_id, 0, 0, pid, rw, port, 1, 1, val) + bytes(pad)


def data(payload: bytes, delta: int = 0) -> bytes:
    payload += bytes(-len(payload) % 4)
    if len(payload) <= 112:  # RB_MAX_SMALL_DATA: the length fits type_len
        return _word(len(payload) // 4, delta) + payload
    return _word(0, delta) + struct.pack("<I", len(payload) + 4) + payload


def extend(delta: int) -> bytes:
    return _word(30, delta & (1 << 27) - 1) + struct.pack("<I", delta >> 27)


def absolute(ts: int) -> bytes:
    return _word(31, ts & (1 << 27) - 1) + struct.pack("<I", ts >> 27)


def padding(length: int, delta: int = 1) -> bytes:
    return _word(29, delta) + struct.pack("<I", length) + bytes(length - 4)


def page(ts: int, body: bytes, *, missed: int | None = None, flagged: bool = False) -> bytes:
    commit = len(body)
    if missed is not None:
        body += struct.pack("<Q", missed)
        commit |= 1 << 30 | 1 << 31
    elif flagged:
        commit |= 1 << 31
    raw = struct.pack("<Qq", ts, commit) + body
    return raw + bytes(4096 - len(raw))


# -- hand-built pages --------------------------------------------------------------------------


def test_formats_parse() -> None:
    assert FMT.event_id == 110
    assert FMT.record.size == 28
    assert FMT.perm is None
    assert PageLayout.parse(HEADER_PAGE) == PageLayout(8, 8, 16)


def test_data_records_and_deltas() -> None:
    body = data(pio(7, 0, 0x70, 5), 10) + data(pio(7, 1, 0x71, 6), 20)
    got = parse_page(page(1000, body), FMT)
    assert got.records == [(1010, 110, 7, 0, 0x70, 1, 1, 5), (1030, 110, 7, 1, 0x71, 1, 1, 6)]
    assert not got.missed


def test_long_record_uses_length_word() -> None:
    body = data(pio(7, 0, 0x70, 5, pad=100), 3) + data(pio(8, 0, 0x71, 6), 4)
    got = parse_page(page(0, body), FMT)
    assert [r[:3] for r in got.records] == [(3, 110, 7), (7, 110, 8)]


def test_time_extend_and_absolute_stamp() -> None:
    big = 5 << 27 | 3
    body = extend(big) + data(pio(1, 0, 1, 0), 2) + absolute(1 << 40) + data(pio(1, 0, 2, 0), 4)
    got = parse_page(page(100, body), FMT)
    assert [r[0] for r in got.records] == [100 + big + 2, (1 << 40) + 4]


def test_padding_skipped_and_end_of_page() -> None:
    body = data(pio(1, 0, 1, 0)) + padding(32) + data(pio(2, 0, 2, 0)) + _word(29, 0) + bytes(60)
    body += data(pio(3, 0, 3, 0))  # after end-of-page padding: never read
    got = parse_page(page(0, body), FMT)
    assert [r[2] for r in got.records] == [1, 2]


def test_other_event_types_skipped() -> None:
    body = data(pio(1, 0, 1, 0, event_id=5)) + data(pio(2, 0, 2, 0))
    assert [r[2] for r in parse_page(page(0, body), FMT).records] == [2]


def test_missed_events() -> None:
    got = parse_page(page(0, data(pio(1, 0, 1, 0)), missed=1234), FMT)
    assert (got.missed, got.missed_count, len(got.records)) == (True, 1234, 1)
    got = parse_page(page(0, data(pio(1, 0, 1, 0)), flagged=True), FMT)
    assert (got.missed, got.missed_count) == (True, 0)


def test_truncated_page_does_not_overrun() -> None:
    raw = page(0, data(pio(1, 0, 1, 0)) + data(pio(2, 0, 2, 0)))
    assert len(parse_page(raw[: 16 + 32 + 10], FMT).records) == 1


def test_offsets_come_from_the_format_file() -> None:
    moved = PIO_FORMAT.replace("offset:8;", "offset:99;").replace("offset:24;", "offset:8;")
    moved = moved.replace("offset:99;", "offset:24;")  # rw and val swap places
    fmt = EventFormat.parse(moved)
    assert fmt.perm is not None
    got = parse_page(page(0, data(pio(1, 0x55, 0x70, 1))), fmt)
    assert got.records[0][1:] == (110, 1, 1, 0x70, 1, 1, 0x55)  # rw read at 24, val at 8


# -- real pages from a live instance -----------------------------------------------------------


def _drain(inst: Path, page_size: int = 4096) -> list[bytes]:
    pages = []
    for cpu_dir in sorted((inst / "per_cpu").glob("cpu*")):
        fd = os.open(cpu_dir / "trace_pipe_raw", os.O_RDONLY | os.O_NONBLOCK)
        try:
            while True:
                try:
                    buf = os.read(fd, page_size)
                except BlockingIOError:
                    break
                if not buf:
                    break
                pages.append(buf)
        finally:
            os.close(fd)
    return pages


@pytest.fixture
def scratch_instance() -> Iterator[Path]:
    inst = TRACEFS / "instances" / f"ioincheck-{os.getpid()}"
    inst.mkdir()
    (inst / "trace_clock").write_text("mono")
    yield inst
    inst.rmdir()


@pytest.mark.tracefs
def test_real_pages_from_trace_marker(scratch_instance: Path) -> None:
    """``print`` events of varying length (short and type_len-0 records, time extends)."""
    fmt = EventFormat.parse(
        (TRACEFS / "events/ftrace/print/format").read_text(), ("common_type", "common_pid", "ip")
    )
    layout = PageLayout.parse((TRACEFS / "events/header_page").read_text())
    t0 = time.monotonic_ns()
    texts = [f"m{i}-" + "x" * (i * 17 % 300) for i in range(60)]
    with open(scratch_instance / "trace_marker", "w") as marker:
        for i, text in enumerate(texts):
            marker.write(text)
            marker.flush()
            if i in (10, 30):
                time.sleep(0.2)  # > 2^27 ns: forces a time-extend record
    t1 = time.monotonic_ns()
    pages = [parse_page(p, fmt, layout) for p in _drain(scratch_instance)]
    records = [r for p in pages for r in p.records]
    assert len(records) == len(texts)
    assert {r[2] for r in records} == {os.getpid()}
    stamps = sorted(r[0] for r in records)
    assert t0 <= stamps[0] <= stamps[-1] <= t1
    assert stamps[31] - stamps[30] >= 200_000_000


@pytest.mark.qemu
def test_real_kvm_pio_pages_match_text(scratch_instance: Path, qemu_vm: object) -> None:
    """SeaBIOS's port 0x70 reads: the raw pages agree with the instance's own text output."""
    (scratch_instance / "events/kvm/kvm_pio/filter").write_text("rw==0&&port==0x70")
    (scratch_instance / "events/kvm/kvm_pio/enable").write_text("1")
    guest = qemu_vm("raw")  # type: ignore[operator]
    guest.cont()
    # SeaBIOS reads the clock within 2 s on an idle machine; under load, wait for it (up to 20 s)
    deadline = time.monotonic() + 20.0
    time.sleep(2.0)
    while "pio_read" not in (scratch_instance / "trace").read_text():
        assert time.monotonic() < deadline, "SeaBIOS never read port 0x70"
        time.sleep(0.2)
    guest.kill()
    (scratch_instance / "events/kvm/kvm_pio/enable").write_text("0")
    text = [ln for ln in (scratch_instance / "trace").read_text().splitlines() if "pio_read" in ln]
    fmt = EventFormat.parse((TRACEFS / "events/kvm/kvm_pio/format").read_text())
    pages: list[RawPage] = [parse_page(p, fmt) for p in _drain(scratch_instance)]
    records = sorted(r for p in pages for r in p.records)
    assert len(records) == len(text) > 0
    assert all(r[3:6] == (0, 0x70, 1) for r in records)
    assert [int(ln.split("val ")[1].split()[0], 16) for ln in text] == [r[7] for r in records]
