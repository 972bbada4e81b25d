"""Roles from client certificates, enforced by one gRPC server interceptor.

:class:`RoleInterceptor` is generic: a *policy* says, for a method and its request, which
:class:`Need` the call has (the role required, what the refusal calls the call, and whether it
is mutating). The agent's policy is :mod:`agent.rpc.policy`; the aggregator installs the same
interceptor with its own. The caller's identity is read from its TLS certificate
(:mod:`agent.identity`); a refusal is PERMISSION_DENIED naming the role needed and the role
presented, e.g. ``SetHook with break needs role admin; presented operator (CN=alice)``.

A certificate is refused as a controller when its extended key usage includes ``serverAuth``
(agents' and the broker's certificates) or when it carries no valid role. On a plain server
(``insecure = true``, an explicit choice) there is no certificate: every caller is ``admin``.

Every checked call runs with :data:`CALLER` (its identity, ``None`` on a plain server) and
:data:`REQUEST_ID` set, so inner layers (the error interceptor) see the same values, and the
request id reaches the client in the trailing metadata ``ioin-request-id``. Each mutating call,
allowed or refused, is handed to ``audit`` once it has finished, as a :class:`Done`.
"""

from __future__ import annotations

import functools
import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from agent.identity import Identity, Role, identity_from_pem
from agent.model import REQUEST_ID as REQUEST_ID_KEY
from agent.rpc.handlers import rewrap

__all__ = [
    "CALLER",
    "REQUEST_ID",
    "Done",
    "Need",
    "Policy",
    "RoleInterceptor",
    "refusal",
    "table_policy",
]

CALLER: ContextVar[Identity | None] = ContextVar("ioin_caller", default=None)
REQUEST_ID: ContextVar[str] = ContextVar("ioin_request_id", default="")

if TYPE_CHECKING:
    Ctx = grpc.aio.ServicerContext[Any, Any]
    MethodHandler = grpc.RpcMethodHandler[Any, Any]


@dataclass(frozen=True, slots=True)
class Need:
    """What a call needs: ``role``; ``what`` names the call in a refusal (``SetHook with
    break``); ``mutating`` calls are audited (``hook_id`` / ``command`` say what they touch)."""

    role: Role
    what: str
    mutating: bool = False
    hook_id: str = ""
    command: str = ""
    # Any certificate the fleet CA signed may make the call, an agent's own included: health
    # probes (``ioind health``, systemd, load balancers) have only the host's pair to show.
    probe: bool = False


# (full method name "/pkg.Service/Method", request) -> Need
Policy = Callable[[str, Any], Need]


def table_policy(reads: Mapping[str, Role], writes: Mapping[str, Role]) -> Policy:
    """A policy from method tables (full names): ``reads`` are not audited, ``writes`` are; any
    other method needs admin and is audited. For services whose calls need no request-dependent
    role, e.g. the aggregator's."""

    def need(method: str, request: Any) -> Need:
        name = method.rsplit("/", 1)[-1]
        if method in reads:
            return Need(reads[method], name)
        if method in writes:
            return Need(writes[method], name, mutating=True)
        return Need(Role.ADMIN, f"{method} (not in the role table)", mutating=True)

    return need


@dataclass(frozen=True, slots=True)
class Done:
    """A finished mutating call, for the audit: who, what, how it ended."""

    caller: Identity | None
    method: str
    need: Need
    code: grpc.StatusCode
    detail: str
    request_id: str
    peer: str


def refusal(caller: Identity | None, need: Need) -> str | None:
    """Why ``caller`` may not make a call needing ``need`` (``None``: it may)."""
    if caller is None:
        return None  # plain server: no identities, everyone is admin (explicitly configured)
    if need.probe:
        return None  # mutual TLS already proved the fleet CA signed it
    if caller.server or caller.role is None or caller.role < need.role:
        return (
            f"{need.what} needs role {need.role.label}; presented {caller.presented}"
            f" ({caller.subject or 'no subject'})"
        )
    return None


def _caller(context: Ctx) -> Identity | None:
    """The peer's identity from its TLS certificate; ``None`` on a plain connection."""
    pem = list(context.auth_context().get("x509_pem_cert", ()))
    return _identity(pem[0]) if pem else None


# A fleet has a handful of controllers and aggregators, each calling again and again: a
# certificate is parsed once, not on every call (bounded: the least recently seen go first).
_identity = functools.lru_cache(maxsize=256)(identity_from_pem)


class RoleInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Checks every call against ``policy`` before it runs. A streaming request is judged
    before its first message, with ``request=None`` (by its method alone).

    ``secure`` says the server requires client certificates: then a call arriving without one
    (which TLS should have made impossible) is refused rather than treated as a plain server's.
    """

    def __init__(
        self, policy: Policy, *, secure: bool, audit: Callable[[Done], None] | None = None
    ) -> None:
        self._policy = policy
        self._secure = secure
        self._audit = audit

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[MethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> MethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        method = details.method
        return rewrap(
            handler,
            unary=lambda inner: self._unary(method, inner),
            stream=lambda inner: self._stream(method, inner),
            stream_unary=lambda inner: self._unary(method, inner, by_method=True),
            stream_stream=lambda inner: self._stream(method, inner, by_method=True),
        )

    async def _admit(self, method: str, request: Any, context: Ctx) -> Need:
        """Set the call's context variables; abort with PERMISSION_DENIED when refused."""
        rid = uuid.uuid4().hex[:12]
        REQUEST_ID.set(rid)
        context.set_trailing_metadata(((REQUEST_ID_KEY, rid),))
        caller = _caller(context)
        CALLER.set(caller)
        need = self._policy(method, request)
        why = refusal(caller, need)
        if why is None and caller is None and self._secure:
            why = f"{need.what} needs role {need.role.label}; presented no certificate"
        if why is not None:
            self._record(method, need, context, grpc.StatusCode.PERMISSION_DENIED, why)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, why)
        return need

    def _record(
        self, method: str, need: Need, context: Ctx, code: grpc.StatusCode | None, detail: str
    ) -> None:
        if self._audit is None or not need.mutating:
            return
        if code is None:  # an inner layer aborted: the context has its status
            code, detail = context.code() or grpc.StatusCode.UNKNOWN, context.details() or ""
        done = Done(CALLER.get(), method, need, code, detail, REQUEST_ID.get(), context.peer())
        self._audit(done)

    def _unary(
        self, method: str, inner: Callable[[Any, Ctx], Awaitable[Any]], *, by_method: bool = False
    ) -> Any:
        async def call(request: Any, context: Ctx) -> Any:
            need = await self._admit(method, None if by_method else request, context)
            try:
                response = await inner(request, context)
            except BaseException:
                self._record(method, need, context, None, "")
                raise
            self._record(method, need, context, grpc.StatusCode.OK, "")
            return response

        return call

    def _stream(
        self,
        method: str,
        inner: Callable[[Any, Ctx], AsyncIterator[Any]],
        *,
        by_method: bool = False,
    ) -> Any:
        async def call(request: Any, context: Ctx) -> AsyncIterator[Any]:
            need = await self._admit(method, None if by_method else request, context)
            try:
                result = inner(request, context)
                if inspect.isawaitable(result):  # a handler that writes with context.write()
                    await result
                else:
                    async for item in result:
                        yield item
            except BaseException:
                self._record(method, need, context, None, "")
                raise
            self._record(method, need, context, grpc.StatusCode.OK, "")

        return call
