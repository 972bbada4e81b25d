"""Parser for the binary pages read from ``per_cpu/cpuN/trace_pipe_raw``.

Layouts (kernel/trace/ring_buffer.c, Documentation/trace/ring-buffer-design.rst; tracefs describes
both in ``events/header_page`` and ``events/header_event``):

- a page (sub-buffer) starts with ``u64 timestamp`` and ``local_t commit`` (the number of data
  bytes, with flags in bits 31 and 30: ``RB_MISSED_EVENTS`` = events were lost before this page,
  ``RB_MISSED_STORED`` = their count is stored as an ``unsigned long`` right after the data);
- events follow, each a 32-bit word: ``type_len`` (5 low bits) and ``time_delta`` (27 bits).
  ``type_len`` 1..28 is a data record of ``type_len * 4`` bytes; 0 is a data record whose length
  word ``array[0]`` counts itself; 29 is padding (``time_delta`` 0: the rest of the page); 30 a time
  extension (``array[0] << 27 | time_delta`` added); 31 an absolute time stamp.

A data record is a trace entry whose fields (``common_type``, ``common_pid``, ``rw``, ``port``...)
sit at the offsets the event's ``format`` file gives; they are decoded with one ``struct.Struct``.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["PIO_FIELDS", "EventFormat", "PageLayout", "RawPage", "parse_page"]

TYPE_PADDING, TYPE_TIME_EXTEND, TYPE_TIME_STAMP = 29, 30, 31  # RINGBUF_TYPE_* in ring_buffer.h
TS_SHIFT = 27  # bits of time_delta in the event header
RB_MISSED_EVENTS = 1 << 31  # ring_buffer.c: events were lost before this page
RB_MISSED_STORED = 1 << 30  # ring_buffer.c: and their count is stored after the data
COMMIT_MASK = RB_MISSED_STORED - 1
PIO_FIELDS = ("common_type", "common_pid", "rw", "port", "size", "count", "val")
_FIELD_RE = re.compile(
    r"field:([^;]*?)(\w+)(\[\d*\])?;\s*offset:(\d+);\s*size:(\d+);\s*signed:(\d)"
)
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def _fields(text: str) -> dict[str, tuple[int, int, bool]]:
    return {m[2]: (int(m[4]), int(m[5]), m[6] == "1") for m in _FIELD_RE.finditer(text)}


@dataclass(frozen=True, slots=True)
class PageLayout:
    """Where the page header keeps its timestamp, commit word and data (``events/header_page``)."""

    commit_offset: int = 8
    commit_size: int = 8
    data_offset: int = 16

    @classmethod
    def parse(cls, text: str) -> PageLayout:
        f = _fields(text)
        return cls(f["commit"][0], f["commit"][1], f["data"][0])


@dataclass(frozen=True, slots=True)
class EventFormat:
    """An event's id and a ``Struct`` unpacking ``names`` at their offsets (its ``format`` file).

    ``names[0]`` must be ``common_type``: records of other event ids are skipped.
    """

    event_id: int
    record: struct.Struct  # unpacks the fields in offset order
    names: tuple[str, ...]
    perm: tuple[int, ...] | None = None  # reorders offset order into ``names`` order, if needed

    @property
    def with_header(self) -> struct.Struct:
        """Event header word plus record in one unpack: the fast path for full-size records."""
        return struct.Struct("<I" + self.record.format[1:])

    @classmethod
    def parse(cls, text: str, names: tuple[str, ...] = PIO_FIELDS) -> EventFormat:
        """Build from a format file; ``KeyError`` / ``ValueError`` if a field is missing or odd."""
        m = re.search(r"^ID:\s*(\d+)", text, re.M)
        if m is None:
            raise ValueError("format file has no ID line")
        fields = _fields(text)
        layout, pos = "<", 0
        for name in sorted(names, key=lambda n: fields[n][0]):
            offset, size, signed = fields[name]
            code = {1: "b", 2: "h", 4: "i", 8: "q"}[size]
            layout += f"{offset - pos}x" if offset > pos else ""
            layout += code if signed else code.upper()
            pos = offset + size
        order = sorted(names, key=lambda n: fields[n][0])
        perm = None if order == list(names) else tuple(order.index(n) for n in names)
        return cls(int(m[1]), struct.Struct(layout), names, perm)


@dataclass(slots=True)
class RawPage:
    """What one page held: records ``(ts, *fields)`` in ``EventFormat.names`` order, and loss."""

    records: list[tuple[int, ...]]
    missed: bool = False  # RB_MISSED_EVENTS: events were lost before this page
    missed_count: int = 0  # the stored count, when RB_MISSED_STORED (else 0: unknown)


_FAST: dict[EventFormat, Callable[[bytes, int], tuple[int, ...]]] = {}


def _fast_unpack(fmt: EventFormat) -> Callable[[bytes, int], tuple[int, ...]]:
    fn = _FAST.get(fmt)
    if fn is None:
        fn = _FAST[fmt] = fmt.with_header.unpack_from
    return fn


def parse_page(page: bytes, fmt: EventFormat, layout: PageLayout = PageLayout()) -> RawPage:
    """Decode one sub-buffer; records of other event types are skipped."""
    ts = _U64.unpack_from(page, 0)[0]
    commit = int.from_bytes(page[layout.commit_offset : layout.commit_offset + layout.commit_size],
                            "little")  # fmt: skip
    length = commit & COMMIT_MASK
    pos, end = layout.data_offset, min(layout.data_offset + length, len(page))
    out = RawPage([], bool(commit & RB_MISSED_EVENTS))
    if commit & RB_MISSED_STORED and end + 8 <= len(page):
        out.missed_count = _U64.unpack_from(page, end)[0]
    unpack, rec_size, event_id, perm = (
        fmt.record.unpack_from,
        fmt.record.size,
        fmt.event_id,
        fmt.perm,
    )
    fast = _fast_unpack(fmt) if perm is None and rec_size % 4 == 0 and rec_size <= 112 else None
    fast_type, fast_len = rec_size // 4, rec_size + 4
    records = out.records
    while pos + 4 <= end:
        if fast is not None and pos + fast_len <= end:
            word, *fields = fast(page, pos)
            if word & 0x1F == fast_type:  # a record of exactly our size (kvm_pio: type_len 7)
                ts += word >> 5
                if fields[0] == event_id:
                    records.append((ts, *fields))
                pos += fast_len
                continue
        word = _U32.unpack_from(page, pos)[0]
        type_len, delta = word & 0x1F, word >> 5
        if type_len <= 28:  # data
            if type_len:
                data, nxt = pos + 4, pos + 4 + type_len * 4
            else:
                data, nxt = pos + 8, pos + 4 + _U32.unpack_from(page, pos + 4)[0]
            ts += delta
            if nxt - data >= rec_size and nxt <= end:
                rec = unpack(page, data)
                if perm is not None:
                    rec = tuple(rec[i] for i in perm)
                if rec[0] == event_id:
                    records.append((ts, *rec))
            pos = nxt
        elif type_len == TYPE_PADDING:
            if delta == 0:
                break  # the rest of the page is padding
            pos += 4 + _U32.unpack_from(page, pos + 4)[0]
        elif type_len == TYPE_TIME_EXTEND:
            ts += (_U32.unpack_from(page, pos + 4)[0] << TS_SHIFT) | delta
            pos += 8
        else:  # TYPE_TIME_STAMP: absolute, 59 low bits (rb_fix_abs_ts keeps the top 5)
            abs_ts = (_U32.unpack_from(page, pos + 4)[0] << TS_SHIFT) | delta
            ts = abs_ts | (ts & (0x1F << 59))
            pos += 8
    return out
