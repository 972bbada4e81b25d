"""Responses that stay under the client's 4 MB message limit however many hooks the agent holds.

ListHooks answers in pages, in id order: at most ``page_size`` hooks (``DEFAULT_PAGE`` when the
request says 0, never more than ``MAX_PAGE``) and at most ``MAX_PAGE_BYTES`` of them, but always
at least one, since a single hook is bounded by ``limits.max_command``. The page token is the id
of the page's last hook; the next page starts after it, so hooks set or removed between two
pages never shift the others. Status carries the hooks up to the same byte bound and says how
many it left out. (Before: after 18 pushes of 120 KB conditions both answers were 4.32 MB and
the client refused them.)
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from agent.errors import BadRequest
from agent.hooks.table import HookTable
from agent.model import SHOWN_ID, printable
from agent.wire import agent_pb2, hooks_pb2

__all__ = ["DEFAULT_PAGE", "MAX_PAGE", "MAX_PAGE_BYTES", "bounded", "list_page"]

DEFAULT_PAGE = 500
MAX_PAGE = 5000
MAX_PAGE_BYTES = 2**20  # a quarter of gRPC's default 4 MB receive limit
_MAX_TOKEN = 64  # a hook id's longest form


def bounded(
    hooks: Iterable[hooks_pb2.Hook], total: int, limit: int = MAX_PAGE_BYTES
) -> tuple[list[hooks_pb2.Hook], int]:
    """The leading hooks (of ``total``) that fit in ``limit`` bytes, at least one, and how many
    were left out; the hooks past the bound are not even drawn from ``hooks``."""
    kept: list[hooks_pb2.Hook] = []
    size = 0
    for hook in hooks:
        size += hook.ByteSize() + 8  # field tag and length prefix, generously
        if kept and size > limit:
            break
        kept.append(hook)
    return kept, total - len(kept)


def list_page(table: HookTable, page_size: int, token: str) -> agent_pb2.ListHooksResponse:
    """The page of ``table``'s hooks after ``token`` (a ListHooksRequest's fields): the ids are
    sorted, and only the page's hooks are built as messages."""
    if len(token) > _MAX_TOKEN:
        shown = printable(token, SHOWN_ID)
        raise BadRequest("page_token", f"'{shown}' is not a hook id")
    size = min(page_size or DEFAULT_PAGE, MAX_PAGE)
    ids = sorted(table.ids())
    after = ids[bisect.bisect_right(ids, token) :] if token else ids
    chosen = after[:size]
    page, omitted = bounded((table.get(i) for i in chosen), len(chosen))
    more = omitted > 0 or len(after) > size
    return agent_pb2.ListHooksResponse(
        hooks=page,
        next_page_token=page[-1].spec.id if more and page else "",
        total=len(ids),
    )
