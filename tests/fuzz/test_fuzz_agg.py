"""Fuzz target: the aggregator's event decoder (``aggregator.decode``). Whatever arrives on an
events topic becomes checked columns or a counted Junk, never another exception (deeply nested
JSON raised RecursionError here before it went through ``agent.decode_guard``)."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from aggregator.decode import Window, decode
from aggregator.errors import Junk
from tests.fuzz.budget import run
from tests.fuzz.test_fuzz_decode import CTYPES, PAYLOADS

DEEP = st.integers(1, 200_000).map(
    lambda n: b'{"host": "h1", "epoch": "e", "events": [' + b"[" * n + b"]" * n + b"]}"
)


@given(st.one_of(PAYLOADS, DEEP), CTYPES)
def agg_target(payload: bytes, content_type: str | None) -> None:
    try:
        cols = decode(payload, content_type or "", "h1", time.time_ns(), Window(1e12, 1e12))
    except Junk:
        return
    assert cols.host == "h1"
    assert len(cols.seq) == len(cols.ts) == len(cols.port)
    assert all(0 <= int(p) <= 0xFFFF for p in cols.port)


def test_fuzz_the_aggregator_decoder() -> None:
    assert run(agg_target) >= 1
