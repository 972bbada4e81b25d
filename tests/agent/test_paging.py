"""ListHooks pages and the bounded Status (issue 10, item 5): what the agent holds it can list."""

from __future__ import annotations

import pytest

from agent.errors import BadRequest
from agent.hooks.lang import parse
from agent.hooks.table import HookTable
from agent.rpc.paging import MAX_PAGE_BYTES, bounded, list_page
from agent.wire import agent_pb2


def table_of(n: int, condition_bytes: int = 0) -> HookTable:
    # A `code { }` block is kept as text (conditions are compiled, and bounded at 64 KiB there),
    # so it makes a hook as big as the 120 KB conditions did.
    t = HookTable()
    cond = f" code {{ {'c' * condition_bytes} }}" if condition_bytes else ""
    for i in range(n):
        t.set(parse(f"!ioin {i:x}{cond}", hook_id=f"h{i:05d}", max_length=200_000))
    return t


def pages(t: HookTable, page_size: int = 0) -> list[agent_pb2.ListHooksResponse]:
    out, token = [], ""
    while True:
        resp = list_page(t, page_size, token)
        out.append(resp)
        token = resp.next_page_token
        if not token:
            return out


def test_pages_cover_every_hook_once_in_id_order() -> None:
    t = table_of(1234)
    got = pages(t, page_size=100)
    assert len(got) == 13
    ids = [h.spec.id for p in got for h in p.hooks]
    assert ids == sorted(h.spec.id for h in t)
    assert {p.total for p in got} == {1234}


def test_big_hooks_are_paged_by_bytes_under_the_client_limit() -> None:
    """18 hooks of 120 KB conditions made a 4.32 MB answer the client refused."""
    t = table_of(18, condition_bytes=120_000)
    got = pages(t)
    assert all(p.ByteSize() <= MAX_PAGE_BYTES + 200_000 for p in got)
    assert sum(len(p.hooks) for p in got) == 18
    kept, omitted = bounded(iter(t), len(t))
    assert (len(kept) + omitted, omitted > 0) == (18, True)


def test_a_page_token_that_cannot_be_an_id_is_refused_unechoed() -> None:
    with pytest.raises(BadRequest, match="is not a hook id") as info:
        list_page(table_of(1), 0, "x" * 100_000)
    assert len(str(info.value)) < 200
