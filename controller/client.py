"""gRPC channels to the agents, and fan-out: one call per host, concurrently, each with a deadline.

This is the one boundary where ``grpc.aio.AioRpcError`` becomes a controller error
(:func:`translate`): ``UNAVAILABLE`` and a missed deadline mean :class:`AgentUnreachable` (naming
the host and its address); every other status is a :class:`RemoteError` carrying the agent's reason.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import grpc
import grpc.aio

from agent.model import REQUEST_ID
from controller.errors import AgentUnreachable, ControllerError, RemoteError
from controller.inventory import Host
from controller.security import Security
from controller.stub import agent_stub

if TYPE_CHECKING:
    from agent.wire.agent_pb2_grpc import AgentAsyncStub

__all__ = [
    "CallPolicy",
    "HostResult",
    "call_host",
    "clean",
    "exit_code",
    "open_channel",
    "translate",
    "unreachable_kind",
]

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
_KINDS = [
    ("refused", re.compile(r"connection refused|connect: refused", re.IGNORECASE)),
    ("tls", re.compile(r"handshake|ssl|tls|certificate|peer name", re.IGNORECASE)),
    # The agent hung up while connecting: it refused our certificate (TLS 1.3 reports that
    # after the client's side of the handshake is done), or one side speaks TLS, the other not.
    ("tls", re.compile(r"^failed to connect.*socket closed$", re.IGNORECASE)),
    ("timeout", re.compile(r"deadline|timed? ?out", re.IGNORECASE)),
]
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 1.0
# gRPC core's prefix before the reason that matters ("...; last error: UNKNOWN: ipv4:h:p: ").
_TRANSPORT_NOISE = re.compile(
    r"^failed to connect to all addresses; last error: [A-Z_]+: (ipv[46]:\S+: )?"
)


@dataclass(frozen=True, slots=True)
class CallPolicy:
    """How each host is called: its whole deadline (s), and retries for idempotent calls."""

    timeout: float = 5.0
    idempotent: bool = False
    retries: int = 2


@dataclass(frozen=True, slots=True)
class HostResult(Generic[T]):
    """What one host answered: ``value`` when the call succeeded, else ``error``.

    A host never called (a rollout stopped, the overall deadline passed) has neither: its
    ``skipped`` says why, and ``attempts`` is 0.
    """

    host: Host
    value: T | None = None
    error: ControllerError | None = None
    skipped: str = ""
    attempts: int = 1
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and not self.skipped

    @property
    def state(self) -> str:
        """``ok``, ``failed`` or ``skipped``."""
        return "failed" if self.error is not None else "skipped" if self.skipped else "ok"


def exit_code(results: Sequence[HostResult[Any]]) -> int:
    """0 when every host succeeded; 2 when some failed or were not attempted (a stopped
    rollout); 1 when every host was attempted and none succeeded."""
    good = sum(r.ok for r in results)
    if good == len(results):
        return 0
    return 2 if good or any(r.skipped for r in results) else 1


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
        reason = clean(_TRANSPORT_NOISE.sub("", details))
        return AgentUnreachable(host.name, host.address, reason, unreachable_kind(details))
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        reason = f"no answer within {timeout:.3g} s"
        return AgentUnreachable(host.name, host.address, reason, "timeout")
    if about and about[1] not in details:
        details = f"{about[0]} '{about[1]}': {details}"
    return RemoteError(host.name, code.name, clean(details))


def open_channel(host: Host, security: Security) -> grpc.aio.Channel:
    """A channel to ``host`` (not yet connected); use it as an async context manager."""
    options: list[tuple[str, Any]] = []
    if host.server_name:
        options.append(("grpc.ssl_target_name_override", host.server_name))
    creds = security.credentials()
    if creds is None:
        return grpc.aio.insecure_channel(host.address, options)
    return grpc.aio.secure_channel(host.address, creds, options)


def unreachable_kind(details: str) -> str:
    """``refused``, ``tls``, ``timeout`` or ``unreachable``, from gRPC core's transport text."""
    for kind, pattern in _KINDS:
        if pattern.search(details):
            return kind
    return "unreachable"


def clean(text: str) -> str:
    """``text`` on one line without control bytes (gRPC details may carry binary)."""
    return _CONTROL.sub("?", " ".join(text.split()))


async def call_host(
    host: Host, security: Security, fn: Call[T], policy: CallPolicy, about: About = None
) -> HostResult[T]:
    """Run ``fn`` against one host's agent within ``policy.timeout``, whatever it costs.

    The deadline bounds the host as a whole (connecting, retries, every call ``fn`` makes): a
    host that accepts TCP but never answers costs at most that. ``UNAVAILABLE`` is retried with
    jittered exponential backoff when ``policy.idempotent``; a failure becomes the result's
    ``error``.
    """
    start = time.monotonic()
    end = start + policy.timeout
    attempt = 0
    while True:
        attempt += 1
        left = end - time.monotonic()
        try:
            async with asyncio.timeout(left), open_channel(host, security) as channel:
                value = await fn(agent_stub(channel), left)
            return HostResult(host, value=value, attempts=attempt, elapsed=_since(start))
        except grpc.aio.AioRpcError as e:
            error = translate(host, e, policy.timeout, about)
            pause = _backoff(attempt)
            # a refused handshake (wrong CA, a certificate the agent refuses) fails the same way
            # every time: only a transport that may come back is worth another attempt
            tls = isinstance(error, AgentUnreachable) and error.kind == "tls"
            again = policy.idempotent and attempt <= policy.retries and not tls
            if not (
                again and e.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() + pause < end
            ):
                return HostResult(host, error=error, attempts=attempt, elapsed=_since(start))
            await asyncio.sleep(pause)
        except ControllerError as e:  # the call's own refusal (e.g. an apply plan conflict)
            return HostResult(host, error=e, attempts=attempt, elapsed=_since(start))
        except TimeoutError:
            error = AgentUnreachable(
                host.name, host.address, f"no answer within {policy.timeout:.3g} s", "timeout"
            )
            return HostResult(host, error=error, attempts=attempt, elapsed=_since(start))


def _backoff(attempt: int) -> float:
    """Full jitter (AWS architecture blog, "Exponential Backoff And Jitter")."""
    return random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2**attempt))


def _since(start: float) -> float:
    return time.monotonic() - start
