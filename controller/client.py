"""gRPC channels to the agents, and fan-out: one call per host, concurrently, each with a deadline.

This is the one boundary where ``grpc.aio.AioRpcError`` becomes a controller error
(:func:`translate`): ``UNAVAILABLE`` and a missed deadline mean :class:`AgentUnreachable` (naming
the host and its address); every other status is a :class:`RemoteError` carrying the agent's reason.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import grpc
import grpc.aio

from agent.model import REQUEST_ID
from agent.wire import agent_pb2_grpc
from controller.errors import AgentUnreachable, ControllerError, RemoteError
from controller.inventory import Host
from controller.security import Security

if TYPE_CHECKING:
    from agent.wire.agent_pb2_grpc import AgentAsyncStub

__all__ = ["HostResult", "Targets", "exit_code", "fan_out", "open_channel", "translate"]

T = TypeVar("T")
# A call receives the stub and the per-call deadline to pass as ``timeout=`` (seconds).
Call = Callable[["AgentAsyncStub", float], Awaitable[T]]
About = tuple[str, str] | None


# UNAVAILABLE is both "could not talk to the agent" (these texts come from gRPC core) and an
# agent's own answer (it maps PublishError to UNAVAILABLE): only the former means unreachable.
# An agent's refusals carry the ioin-request-id trailer; transport failures never do.
_TRANSPORT = re.compile(
    r"failed to connect|connections to all backends|socket closed|connection (reset|refused)"
    r"|broken pipe|handshake|dns resolution|goaway|empty address list|unavailable$",
    re.IGNORECASE,
)
# gRPC core's prefix before the reason that matters ("...; last error: UNKNOWN: ipv4:h:p: ").
_TRANSPORT_NOISE = re.compile(
    r"^failed to connect to all addresses; last error: [A-Z_]+: (ipv[46]:\S+: )?"
)


@dataclass(frozen=True, slots=True)
class Targets:
    """Where a command goes and how: the hosts, the transport security, the per-call deadline."""

    hosts: Sequence[Host]
    security: Security
    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class HostResult(Generic[T]):
    """What one host answered: ``value`` when the call succeeded, else ``error``."""

    host: Host
    value: T | None = None
    error: ControllerError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def exit_code(results: Sequence[HostResult[Any]]) -> int:
    """0 when every host succeeded, 2 when some failed, 1 when none succeeded."""
    good = sum(r.ok for r in results)
    if good == len(results):
        return 0
    return 2 if good else 1


def translate(
    host: Host, err: grpc.aio.AioRpcError, timeout: float, about: About = None
) -> ControllerError:
    """The controller error for a failed call.

    ``about`` is what the call was about, e.g. ``("hook", "uart")``: named in the message when
    the agent's reason does not name it already.
    """
    code = err.code()
    details = err.details() or code.name.lower()
    # aio metadata iterates as (key, value) pairs (the stubs describe the sync type)
    pairs = cast("Iterable[tuple[str, Any]]", err.trailing_metadata() or ())
    answered = any(key == REQUEST_ID for key, _ in pairs)
    if code == grpc.StatusCode.UNAVAILABLE and not answered and _TRANSPORT.search(details):
        return AgentUnreachable(host.name, host.address, _TRANSPORT_NOISE.sub("", details))
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return AgentUnreachable(host.name, host.address, f"no answer within {timeout:g} s")
    if about and about[1] not in details:
        details = f"{about[0]} '{about[1]}': {details}"
    return RemoteError(host.name, code.name, details)


def open_channel(host: Host, security: Security) -> grpc.aio.Channel:
    """A channel to ``host`` (not yet connected); use it as an async context manager."""
    options: list[tuple[str, Any]] = []
    if host.server_name:
        options.append(("grpc.ssl_target_name_override", host.server_name))
    creds = security.credentials()
    if creds is None:
        return grpc.aio.insecure_channel(host.address, options)
    return grpc.aio.secure_channel(host.address, creds, options)


async def call_host(
    targets: Targets, host: Host, fn: Call[T], about: About = None
) -> HostResult[T]:
    """Run ``fn`` against one host's agent; a failure becomes the result's ``error``."""
    try:
        async with open_channel(host, targets.security) as channel:
            stub = agent_pb2_grpc.AgentStub(channel)
            return HostResult(host, value=await fn(stub, targets.timeout))
    except grpc.aio.AioRpcError as e:
        return HostResult(host, error=translate(host, e, targets.timeout, about))


async def fan_out(targets: Targets, fn: Call[T], about: About = None) -> list[HostResult[T]]:
    """Run ``fn`` on every host concurrently; results in the inventory's order."""
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(call_host(targets, h, fn, about)) for h in targets.hosts]
    return [t.result() for t in tasks]
