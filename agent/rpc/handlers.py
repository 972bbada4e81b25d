"""A gRPC method handler rebuilt around new behaviour: what every server interceptor here does
(call caps, roles and audit, the aggregator's error mapping), written once.

An ``aio`` server interceptor receives the handler the servicer registered and returns one whose
behaviour is wrapped; the handler's shape (unary-unary, unary-stream, stream-unary,
stream-stream) and its codec stay as they were.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

__all__ = ["Wrap", "rewrap"]

Wrap = Callable[[Any], Any]
"""Takes a handler's behaviour (``(request or request iterator, context) -> ...``), returns
the behaviour to serve instead."""

if TYPE_CHECKING:
    MethodHandler = grpc.RpcMethodHandler[Any, Any]


def rewrap(
    handler: MethodHandler,
    *,
    unary: Wrap | None = None,
    stream: Wrap | None = None,
    stream_unary: Wrap | None = None,
    stream_stream: Wrap | None = None,
) -> MethodHandler:
    """``handler`` with its behaviour passed through the wrapper given for its shape
    (``unary``: unary-unary, ``stream``: unary-stream); a shape without one is left as it is."""
    shapes = (
        (handler.unary_unary, unary, grpc.unary_unary_rpc_method_handler),
        (handler.unary_stream, stream, grpc.unary_stream_rpc_method_handler),
        (handler.stream_unary, stream_unary, grpc.stream_unary_rpc_method_handler),
        (handler.stream_stream, stream_stream, grpc.stream_stream_rpc_method_handler),
    )
    for behaviour, wrap, make in shapes:
        if behaviour is not None:
            if wrap is None:
                return handler
            return make(
                wrap(behaviour),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler
