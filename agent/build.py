"""The composition root: the one place that builds an agent's parts and wires them together.

- :func:`build_agent` — ``ioind``: backend → pipeline → :class:`~agent.publish.route.BusRoute`
  → outbox (spool on disk) → publisher, hooks persisted in ``state_dir``, reported by
  :class:`~agent.status.AgentStatus`, served by :class:`~agent.core.Agent`.
- :func:`build_local` — ``ioind local``: backend → pipeline → an :class:`Output` of the caller's
  (stdout); no outbox, spool, publisher or state file is built.

Nothing else constructs these parts, so what depends on what is read here, top to bottom.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from agent.backends import Backend, load_backend
from agent.config import AgentConfig
from agent.core import Agent
from agent.hooks.service import HookService
from agent.hooks.table import HookTable
from agent.notices import Notice
from agent.pipeline import Batch, Pipeline
from agent.publish.mqtt import Publisher
from agent.publish.outbox import Outbox
from agent.publish.route import BusRoute
from agent.publish.spool import Spool
from agent.rpc.limits import LimitInterceptor
from agent.runtime import Runtime
from agent.state import HookStore
from agent.status import AgentStatus, Identity

__all__ = ["Output", "build_agent", "build_local"]


class Output(Protocol):
    """Where the pipeline's cut batches and the notices go (the bus, or stdout)."""

    def emit(self, hook_id: str, batch: Batch) -> None: ...

    def notice(self, notice: Notice) -> None: ...


def build_agent(config: AgentConfig, *, backend: Backend | None = None) -> Agent:
    """An agent that serves and publishes; enter it, then ``run`` it."""
    me = Identity.new(config.host)
    backend = backend or load_backend(config)
    table = HookTable(config.limits.max_hooks)
    hooks = _hooks(config, table, backend, HookStore(config.state_dir))
    spool = Spool(Path(config.state_dir) / "spool.db", config.mqtt.spool_mb * 1024 * 1024)
    outbox = Outbox(spool)
    route = BusRoute(me.host, me.epoch, outbox, config.mqtt.format)
    pipeline = _pipeline(config, table, route)
    publisher = Publisher(me.host, config.mqtt, outbox, lambda: status.birth())
    limits = LimitInterceptor(config.limits.max_rpcs, config.limits.max_streams)
    status = AgentStatus(
        me, table, backend, pipeline, outbox, publisher, config.labels, limits.counts
    )
    closers = (spool.close, hooks.close)
    runtime = Runtime(hooks, backend, pipeline, restore=config.hooks, closers=closers)
    return Agent(runtime, publisher, route, status, limits)


def build_local(config: AgentConfig, output: Output, *, backend: Backend | None = None) -> Runtime:
    """A backend and pipeline printing to ``output``; hooks from the config and the caller."""
    backend = backend or load_backend(config)
    table = HookTable(config.limits.max_hooks)
    hooks = _hooks(config, table, backend, None)
    return Runtime(hooks, backend, _pipeline(config, table, output), restore=config.hooks)


def _hooks(
    config: AgentConfig, table: HookTable, backend: Backend, store: HookStore | None
) -> HookService:
    return HookService(
        table,
        store,
        capabilities=backend.capabilities,
        backend_name=backend.name,
        changed=backend.hooks_changed,
        max_command=config.limits.max_command,
        max_nesting=config.limits.max_nesting,
    )


def _pipeline(config: AgentConfig, table: HookTable, output: Output) -> Pipeline:
    return Pipeline(
        table,
        output.emit,
        batch_max=config.mqtt.batch_max,
        batch_ms=config.mqtt.batch_ms,
        notice=output.notice,
    )
