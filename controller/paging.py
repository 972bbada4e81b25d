"""ListHooks through every page: an agent answers at most ~1 MB a page (``agent.rpc.paging``),
so the controller follows ``next_page_token`` until the last page, with a bound on the pages it
will follow (an agent that never ends its list is refused, not followed forever)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.wire import agent_pb2
from controller.errors import ControllerError

if TYPE_CHECKING:
    from agent.wire.agent_pb2_grpc import AgentAsyncStub

__all__ = ["MAX_PAGES", "all_hooks"]

MAX_PAGES = 10_000  # 5,000,000 hooks at the agent's default page size


async def all_hooks(stub: AgentAsyncStub, per_page: float) -> agent_pb2.ListHooksResponse:
    """Every hook of one agent, in id order, as one response (``per_page`` s for each page)."""
    whole, token = agent_pb2.ListHooksResponse(), ""
    for _ in range(MAX_PAGES):
        request = agent_pb2.ListHooksRequest(page_token=token)
        page = await stub.ListHooks(request, timeout=per_page)
        whole.hooks.extend(page.hooks)
        whole.total = page.total
        if not page.next_page_token:
            return whole
        if page.next_page_token <= token:
            raise ControllerError(f"ListHooks: page token '{page.next_page_token[:64]}' goes back")
        token = page.next_page_token
    raise ControllerError(f"ListHooks: more than {MAX_PAGES} pages")
