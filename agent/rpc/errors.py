"""One server interceptor: maps agent errors to gRPC status codes and logs every call.

=========================== ===================
AgentError subclass         gRPC status
=========================== ===================
HookSyntaxError, ConfigError INVALID_ARGUMENT
BadRequest                  INVALID_ARGUMENT
CapabilityError             INVALID_ARGUMENT
HookNotFound, NotFoundError NOT_FOUND
HookLimitError, StateFull   RESOURCE_EXHAUSTED
BackendError (others)       FAILED_PRECONDITION
PublishError                UNAVAILABLE
anything else               INTERNAL (logged with its traceback; the agent keeps running)
=========================== ===================

Request bytes that do not decode become :class:`BadRequest` (grpc alone would answer UNKNOWN).
The details are the error's text, control characters escaped, cut at ``MAX_DETAILS``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import structlog
from google.protobuf.message import DecodeError

from agent.errors import (
    AgentError,
    BackendError,
    BadRequest,
    CapabilityError,
    ConfigError,
    HookLimitError,
    HookNotFound,
    HookSyntaxError,
    NotFoundError,
    PublishError,
    StateFull,
)
from agent.model import REQUEST_ID, printable
from agent.rpc.roles import CALLER
from agent.rpc.roles import REQUEST_ID as CURRENT_REQUEST_ID

__all__ = ["ErrorInterceptor", "status_for"]

log = structlog.get_logger("ioind.rpc")

# Characters of an error's text sent back as the status details (the grpc-message header): a
# refusal never echoes unbounded input (a client's metadata limit is 16 KB by default).
MAX_DETAILS = 4096

_CODES: list[tuple[type[AgentError], grpc.StatusCode]] = [
    (HookSyntaxError, grpc.StatusCode.INVALID_ARGUMENT),
    (BadRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (ConfigError, grpc.StatusCode.INVALID_ARGUMENT),
    (CapabilityError, grpc.StatusCode.INVALID_ARGUMENT),
    (HookNotFound, grpc.StatusCode.NOT_FOUND),
    (HookLimitError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (StateFull, grpc.StatusCode.RESOURCE_EXHAUSTED),
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
            request_deserializer=_lenient(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )


@dataclass(frozen=True, slots=True)
class _Undecodable:
    """A request whose bytes are not the method's message (grpc itself would answer UNKNOWN)."""

    reason: str


def _lenient(decode: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if decode is None:
        return None

    def lenient(data: bytes) -> Any:
        try:
            return decode(data)
        except DecodeError as exc:
            return _Undecodable(str(exc))

    return lenient


def _wrap(method: str, inner: Handler) -> Handler:
    async def call(request: Any, context: Ctx) -> Any:
        rid = CURRENT_REQUEST_ID.get() or uuid.uuid4().hex[:12]  # the role interceptor's
        start = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            if isinstance(request, _Undecodable):
                raise BadRequest("request", f"not a valid message: {request.reason}")
            return await inner(request, context)
        except AgentError as exc:
            code = status_for(exc)
            context.set_trailing_metadata(((REQUEST_ID, rid),))
            await context.abort(code, printable(str(exc), MAX_DETAILS))
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
