"""Caps on concurrent gRPC calls: at most ``max_rpcs`` unary calls and ``max_streams`` server
streams (health ``Watch``) at once.

A call over its cap is refused at once with RESOURCE_EXHAUSTED naming the limit, before the
handler runs, so a flood of callers costs the agent a refusal each and no memory that stays
(before, 1,000 concurrent health ``Watch`` streams were all accepted and RSS grew by 25 MB for
good). :class:`CallCounts` holds what is running and what was refused; the agent reports them as
counters and Prometheus metrics (``rpc_active``, ``rpc_refused``, ``streams_active``,
``streams_refused``).

The interceptor is the outermost one: a refused call is never logged as a call, and only counts.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from agent.rpc.handlers import rewrap

__all__ = ["CallCounts", "LimitInterceptor"]

if TYPE_CHECKING:
    Ctx = grpc.aio.ServicerContext[Any, Any]
    Handler = Callable[[Any, Ctx], Any]
    MethodHandler = grpc.RpcMethodHandler[Any, Any]


@dataclass(slots=True)
class CallCounts:
    """Calls running now and calls refused so far, unary and streaming apart."""

    rpc_active: int = 0
    rpc_refused: int = 0
    streams_active: int = 0
    streams_refused: int = 0

    def as_counters(self) -> dict[str, int]:
        return {
            "rpc_active": self.rpc_active,
            "rpc_refused": self.rpc_refused,
            "streams_active": self.streams_active,
            "streams_refused": self.streams_refused,
        }


class LimitInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Refuses a call over ``max_rpcs`` (unary) or ``max_streams`` (server streaming)."""

    def __init__(self, max_rpcs: int, max_streams: int) -> None:
        """The caps are ``limits.max_rpcs`` and ``limits.max_streams`` of the agent's config."""
        self.max_rpcs = max_rpcs
        self.max_streams = max_streams
        self.counts = CallCounts()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[MethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> MethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        return rewrap(handler, unary=self._unary, stream=self._stream)

    async def _refuse(self, context: Ctx, what: str, limit: int, key: str) -> None:
        await context.abort(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"too many concurrent {what}: the agent serves {limit} at once ({key})",
        )

    def _unary(self, inner: Handler) -> Handler:
        async def call(request: Any, context: Ctx) -> Any:
            c = self.counts
            if c.rpc_active >= self.max_rpcs:
                c.rpc_refused += 1
                await self._refuse(context, "calls", self.max_rpcs, "limits.max_rpcs")
            c.rpc_active += 1
            try:
                return await inner(request, context)
            finally:
                c.rpc_active -= 1

        return call

    def _stream(self, inner: Handler) -> Handler:
        async def call(request: Any, context: Ctx) -> None:
            c = self.counts
            if c.streams_active >= self.max_streams:
                c.streams_refused += 1
                await self._refuse(context, "streams", self.max_streams, "limits.max_streams")
            c.streams_active += 1
            try:
                result = inner(request, context)
                if inspect.isasyncgen(result):  # a generator handler: its items become writes
                    async for message in result:
                        await context.write(message)
                else:  # a coroutine handler writes itself (grpc_health's Watch does)
                    await result
            finally:
                c.streams_active -= 1

        return call
