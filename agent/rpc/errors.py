"""One server interceptor: maps agent errors to gRPC status codes and logs every call.

=========================== ===================
AgentError subclass         gRPC status
=========================== ===================
HookSyntaxError, ConfigError INVALID_ARGUMENT
CapabilityError             INVALID_ARGUMENT
HookNotFound, NotFoundError NOT_FOUND
BackendError (others)       FAILED_PRECONDITION
PublishError                UNAVAILABLE
anything else               INTERNAL (logged with its traceback; the agent keeps running)
=========================== ===================
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
import structlog

from agent.errors import (
    AgentError,
    BackendError,
    CapabilityError,
    ConfigError,
    HookNotFound,
    HookSyntaxError,
    NotFoundError,
    PublishError,
)
from agent.model import REQUEST_ID
from agent.rpc.roles import CALLER
from agent.rpc.roles import REQUEST_ID as CURRENT_REQUEST_ID

__all__ = ["ErrorInterceptor", "status_for"]

log = structlog.get_logger("ioind.rpc")

_CODES: list[tuple[type[AgentError], grpc.StatusCode]] = [
    (HookSyntaxError, grpc.StatusCode.INVALID_ARGUMENT),
    (ConfigError, grpc.StatusCode.INVALID_ARGUMENT),
    (CapabilityError, grpc.StatusCode.INVALID_ARGUMENT),
    (HookNotFound, grpc.StatusCode.NOT_FOUND),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (BackendError, grpc.StatusCode.FAILED_PRECONDITION),
    (PublishError, grpc.StatusCode.UNAVAILABLE),
]


def status_for(exc: AgentError) -> grpc.StatusCode:
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.FAILED_PRECONDITION


if TYPE_CHECKING:
    Ctx = grpc.aio.ServicerContext[Any, Any]
    Handler = Callable[[Any, Ctx], Awaitable[Any]]
    MethodHandler = grpc.RpcMethodHandler[Any, Any]


class ErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Wraps every unary-unary handler: error mapping, a request id, one log line per call."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[MethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> MethodHandler:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = details.method
        return grpc.unary_unary_rpc_method_handler(
            _wrap(method, handler.unary_unary),  # type: ignore[arg-type]
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _wrap(method: str, inner: Handler) -> Handler:
    async def call(request: Any, context: Ctx) -> Any:
        rid = CURRENT_REQUEST_ID.get() or uuid.uuid4().hex[:12]  # the role interceptor's
        start = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            return await inner(request, context)
        except AgentError as exc:
            code = status_for(exc)
            context.set_trailing_metadata(((REQUEST_ID, rid),))
            await context.abort(code, str(exc))
        except Exception:
            code = grpc.StatusCode.INTERNAL
            log.exception("rpc-crashed", method=method, request_id=rid)
            context.set_trailing_metadata(((REQUEST_ID, rid),))
            await context.abort(code, f"internal error (request id {rid})")
        finally:
            ms = round((time.perf_counter() - start) * 1000, 2)
            who = CALLER.get()  # set by the role interceptor; None on a plain server
            log.info(
                "rpc",
                method=method,
                code=code.name,
                ms=ms,
                request_id=rid,
                peer=context.peer(),
                subject=who.subject if who else "-",
            )

    return call
