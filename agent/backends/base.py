"""The backend Protocol: what every hypervisor backend (kvm, kvm-trace, sim) provides.

A backend is an async context manager. Between ``__aenter__`` and ``__aexit__`` the agent calls
:meth:`Backend.run` once, in its task group; ``run`` matches accesses against the shared
:class:`~agent.hooks.table.HookTable` (from any thread: ``match`` is lock-free) and hands the
resulting events and notices to ``sink``, an :class:`~agent.sink.EventSink`, *in batches, on the
event loop thread* (threads go through :class:`~agent.backends.handoff.Handoff`, once per batch,
never once per exit).
It calls ``ready()`` once it is producing, and returns only when cancelled or on a fatal error.

After every change to the table the agent calls :meth:`Backend.hooks_changed` (kvm-trace rebuilds
its kernel filter there). Backends that can pause a vCPU implement ``resume``; backends that run
their own VMs implement ``start_vm`` / ``stop_vm`` / ``list_vms``. Others raise
:class:`~agent.errors.CapabilityError` from those.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, Self, runtime_checkable

from agent.model import Capability
from agent.sink import EventSink

if TYPE_CHECKING:
    from types import TracebackType

    from agent.hooks.table import HookTable
    from agent.wire import agent_pb2

__all__ = ["Backend", "EventSink"]


@runtime_checkable
class Backend(Protocol):
    name: str
    capabilities: frozenset[Capability]

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def run(self, table: HookTable, sink: EventSink, ready: Callable[[], None]) -> None:
        """Produce events into ``sink`` until cancelled."""
        ...

    def hooks_changed(self) -> None:
        """The table changed (called on the event loop thread)."""
        ...

    def counters(self) -> dict[str, int]:
        """Backend-specific counters for GetStatus and metrics (exits, open-bus reads, lost)."""
        ...

    async def resume(self, break_id: str, value: int | None) -> bool:
        """Continue a vCPU paused by a break; False if no such break is pending."""
        ...

    async def start_vm(self, spec: agent_pb2.VmSpec) -> agent_pb2.VmInfo: ...

    async def stop_vm(self, vm_id: int) -> agent_pb2.VmInfo: ...

    def list_vms(self) -> Sequence[agent_pb2.VmInfo]: ...
