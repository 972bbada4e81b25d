"""The gRPC server: ``ioin.v1.Agent`` plus the standard health service.

``create_server(agent, config)`` builds and binds the server (port 0 in tests) and returns it
with the bound port; ``serve`` runs it until cancelled. The servicer only translates proto to
:class:`~agent.core.Agent` calls; errors are mapped by :class:`~agent.rpc.errors.ErrorInterceptor`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from agent.audit import Audit
from agent.config import GrpcConfig
from agent.core import Agent
from agent.errors import ConfigError
from agent.preflight import listen_problem
from agent.rpc.errors import ErrorInterceptor
from agent.rpc.policy import agent_policy
from agent.rpc.roles import RoleInterceptor
from agent.rpc.tls import ServerTls
from agent.wire import agent_pb2, agent_pb2_grpc, hooks_pb2

__all__ = ["SERVICE", "AgentServicer", "create_server", "serve"]

SERVICE = "ioin.v1.Agent"

if TYPE_CHECKING:
    Ctx = grpc.aio.ServicerContext[Any, Any]


class AgentServicer(agent_pb2_grpc.AgentServicer):
    """Proto in, :class:`~agent.core.Agent` call, proto out; nothing else."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    async def SetHook(
        self, request: agent_pb2.SetHookRequest, context: Ctx
    ) -> agent_pb2.SetHookResponse:
        spec = request.spec if request.HasField("spec") else None
        done = self._agent.set_hook(
            command=request.command, spec=spec, enabled=not request.disabled
        )
        return agent_pb2.SetHookResponse(
            hook=done.hook, created=done.created, unchanged=done.unchanged
        )

    async def RemoveHook(
        self, request: agent_pb2.HookRef, context: Ctx
    ) -> agent_pb2.RemoveHookResponse:
        return agent_pb2.RemoveHookResponse(hook=self._agent.remove_hook(request.id))

    async def ListHooks(
        self, request: agent_pb2.ListHooksRequest, context: Ctx
    ) -> agent_pb2.ListHooksResponse:
        return self._agent.list_hooks(request.page_size, request.page_token)

    async def EnableHook(self, request: agent_pb2.HookRef, context: Ctx) -> hooks_pb2.Hook:
        return self._agent.enable_hook(request.id, True)

    async def DisableHook(self, request: agent_pb2.HookRef, context: Ctx) -> hooks_pb2.Hook:
        return self._agent.enable_hook(request.id, False)

    async def GetStatus(
        self, request: agent_pb2.GetStatusRequest, context: Ctx
    ) -> agent_pb2.Status:
        return self._agent.status()

    async def Resume(
        self, request: agent_pb2.ResumeRequest, context: Ctx
    ) -> agent_pb2.ResumeResponse:
        value = request.value if request.HasField("value") else None
        await self._agent.resume(request.break_id, value)
        return agent_pb2.ResumeResponse(break_id=request.break_id, resumed=True)

    async def StartVm(self, request: agent_pb2.VmSpec, context: Ctx) -> agent_pb2.VmInfo:
        return await self._agent.start_vm(request)

    async def StopVm(self, request: agent_pb2.VmRef, context: Ctx) -> agent_pb2.VmInfo:
        return await self._agent.stop_vm(request.id)

    async def ListVms(
        self, request: agent_pb2.ListVmsRequest, context: Ctx
    ) -> agent_pb2.ListVmsResponse:
        return agent_pb2.ListVmsResponse(vms=list(self._agent.list_vms()))


async def create_server(
    agent: Agent, config: GrpcConfig, tls: ServerTls | None = None
) -> tuple[grpc.aio.Server, int, HealthServicer]:
    """A started-ready (bound, not yet started) server, its port, and its health servicer.

    Mutual TLS unless ``config.insecure``; pass ``tls`` to keep the handle a reload uses.
    """
    roles = RoleInterceptor(
        agent_policy(agent.held),
        secure=not config.insecure,
        audit=Audit(agent.identity.host, agent.audit),
    )
    # The caps first: a call over them is refused before it is logged or handled. Then roles
    # (and the audit), then the error mapping around the servicer.
    server = grpc.aio.server(interceptors=[agent.call_limits, roles, ErrorInterceptor()])
    agent_pb2_grpc.add_AgentServicer_to_server(AgentServicer(agent), server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    for name in ("", SERVICE):
        await health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    try:
        if config.insecure:
            port = server.add_insecure_port(config.listen)
        else:
            creds = (tls or ServerTls(config)).credentials()
            port = server.add_secure_port(config.listen, creds)
    except RuntimeError:  # grpc's "Failed to bind": a port taken since the preflight check
        port = 0
    if port == 0:
        why = listen_problem("grpc.listen", config.listen)
        raise ConfigError(why or f"grpc.listen: cannot listen on {config.listen}")
    return server, port, health


async def serve(
    agent: Agent,
    server: grpc.aio.Server,
    health: HealthServicer,
    started: asyncio.Event | None = None,
) -> None:
    """Run ``server`` until cancelled, keeping health in step with the agent.

    ``started`` is set once the server accepts connections (readiness for systemd).

    ``ioin.v1.Agent`` (and the overall ``""``) is SERVING while the backend is producing and the
    broker is connected, NOT_SERVING otherwise (checked every half second).
    """
    await server.start()
    if started is not None:
        started.set()
    serving: bool | None = None
    try:
        while True:
            up = agent.serving()
            if up != serving:
                status = (
                    health_pb2.HealthCheckResponse.SERVING
                    if up
                    else health_pb2.HealthCheckResponse.NOT_SERVING
                )
                for name in ("", SERVICE):
                    await health.set(name, status)
                serving = up
            await asyncio.sleep(0.5)
    finally:
        await health.enter_graceful_shutdown()
        await server.stop(grace=1.0)
