"""The agent's RPCs on one channel, each made when first called.

The generated ``AgentStub`` builds a multicallable for every one of the service's ten methods
each time it is created. A fan-out creates one per host and calls one or two methods: at 1,000
hosts the nine unused ones were a tenth of the controller's Python time (bench/fleet.py). This
stub has the generated one's interface (the type checker sees ``AgentAsyncStub``) and builds a
method's multicallable on first use, from the service descriptor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import grpc.aio
from google.protobuf import message_factory

from agent.wire import agent_pb2

if TYPE_CHECKING:
    from agent.wire.agent_pb2_grpc import AgentAsyncStub

__all__ = ["agent_stub"]

_SERVICE = agent_pb2.DESCRIPTOR.services_by_name["Agent"]
# name -> (path, request serializer, response deserializer); every method is unary-unary
_METHODS: dict[str, tuple[str, Any, Any]] = {
    m.name: (
        f"/{_SERVICE.full_name}/{m.name}",
        message_factory.GetMessageClass(m.input_type).SerializeToString,
        message_factory.GetMessageClass(m.output_type).FromString,
    )
    for m in _SERVICE.methods
    if not (m.client_streaming or m.server_streaming)
}


class _LazyStub:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel

    def __getattr__(self, name: str) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        try:
            path, serialize, deserialize = _METHODS[name]
        except KeyError:
            raise AttributeError(f"the Agent service has no unary method '{name}'") from None
        call = self._channel.unary_unary(
            path, request_serializer=serialize, response_deserializer=deserialize
        )
        setattr(self, name, call)  # later calls find it without __getattr__
        return call


def agent_stub(channel: grpc.aio.Channel) -> AgentAsyncStub:
    """An ``AgentStub`` for ``channel`` that builds only the methods it is asked for."""
    return cast("AgentAsyncStub", _LazyStub(channel))
