"""The agent's domain operations: what the gRPC servicer (and only it) calls.

:class:`Agent` is built by :func:`agent.build.build_agent` and holds no construction logic of its
own. Each method is one domain operation on one part: hooks go to the
:class:`~agent.hooks.service.HookService`, breaks and VMs to the backend, reports to
:class:`~agent.status.AgentStatus`; :meth:`Agent.run` is the :class:`~agent.runtime.Runtime`'s
task group with the publisher and the drop notices added. Servicers translate proto to these
calls and never reach past them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Self

from agent.errors import NotFoundError
from agent.hooks.service import HookService, SetOutcome
from agent.notices import Notice, NoticeKind
from agent.publish.mqtt import Publisher
from agent.publish.route import BusRoute
from agent.rpc.limits import LimitInterceptor
from agent.rpc.paging import list_page
from agent.runtime import Runtime, Task
from agent.status import AgentStatus, Identity
from agent.wire import agent_pb2, hooks_pb2

__all__ = ["Agent"]


class Agent:
    """One ioind: ``async with build_agent(config) as agent: await agent.run(serve)``."""

    def __init__(
        self,
        runtime: Runtime,
        publisher: Publisher,
        route: BusRoute,
        status: AgentStatus,
        call_limits: LimitInterceptor,
    ) -> None:
        self._runtime = runtime
        self.call_limits = call_limits  # the server's caps on concurrent calls (limits.max_*)
        self._hooks: HookService = runtime.hooks
        self._publisher = publisher
        self._route = route
        self.reports = status  # counters and gauges, read by the metrics endpoint

    @property
    def identity(self) -> Identity:
        return self.reports.identity

    async def __aenter__(self) -> Self:
        await self._runtime.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runtime.__aexit__(*exc)

    async def run(self, *tasks: Task) -> None:
        """Backend, pipeline, publisher, drop notices and ``tasks``, until cancelled."""
        drops = self.reports.announce_drops
        await self._runtime.run(self._publisher.run, lambda: drops(self._route.notice), *tasks)

    def status(self) -> agent_pb2.Status:
        """GetStatus: version, backend, capabilities, hooks, counters, broker connection."""
        return self.reports.status()

    def renew_tls(self) -> None:
        """Present renewed MQTT TLS files from now on (reconnects; a SIGHUP reload calls it)."""
        self._publisher.renew()

    @property
    def producing(self) -> asyncio.Event:
        """Set once the backend produces (systemd's readiness and watchdog wait for it)."""
        return self._runtime.ready

    def serving(self) -> bool:
        """The backend is producing and the broker is connected."""
        return self._runtime.ready.is_set() and self._publisher.connected

    # -- hooks ----------------------------------------------------------------------------

    def set_hook(
        self, *, command: str = "", spec: hooks_pb2.HookSpec | None = None, enabled: bool = True
    ) -> SetOutcome:
        """Create or replace a hook given as ``command``, ``spec`` or both (they must agree)."""
        return self._hooks.set(command=command, spec=spec, enabled=enabled)

    def remove_hook(self, hook_id: str) -> hooks_pb2.Hook:
        return self._hooks.remove(hook_id)

    def enable_hook(self, hook_id: str, enabled: bool) -> hooks_pb2.Hook:
        return self._hooks.enable(hook_id, enabled)

    def hooks(self) -> list[hooks_pb2.Hook]:
        """Every hook, unpaged: for the agent's own use (a reload), never a reply."""
        return self._hooks.hooks()

    def list_hooks(self, page_size: int, page_token: str) -> agent_pb2.ListHooksResponse:
        """One page of the hooks, in id order (``agent.rpc.paging``)."""
        return list_page(self._hooks.table, page_size, page_token)

    def held(self, hook_id: str) -> hooks_pb2.HookSpec | None:
        """The spec held under ``hook_id`` (the role policy judges changes to it by this)."""
        table = self._hooks.table
        return table.get(hook_id).spec if hook_id in table else None

    def audit(self, record: Mapping[str, object]) -> None:
        """Publish an audit record on ``ioin/v1/<host>/audit`` (see :mod:`agent.audit`)."""
        self._route.notice(Notice(NoticeKind.AUDIT, record))

    # -- breaks and VMs (the backend) -----------------------------------------------------

    async def resume(self, break_id: str, value: int | None) -> None:
        """Continue the vCPU paused by ``break_id``; :class:`NotFoundError` if none is."""
        if not await self._runtime.backend.resume(break_id, value):
            raise NotFoundError("pending break", break_id)

    async def start_vm(self, spec: agent_pb2.VmSpec) -> agent_pb2.VmInfo:
        return await self._runtime.backend.start_vm(spec)

    async def stop_vm(self, vm_id: int) -> agent_pb2.VmInfo:
        return await self._runtime.backend.stop_vm(vm_id)

    def list_vms(self) -> Sequence[agent_pb2.VmInfo]:
        return self._runtime.backend.list_vms()
