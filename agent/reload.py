"""SIGHUP: read the config again and apply what can change while the agent runs.

What a reload changes, between ``RELOADING=1`` and ``READY=1`` (see :mod:`agent.supervisor`):

- ``log_level``, for every logger at once;
- the hooks the config file owns (``hooks = [...]``): a hook the new file adds is set, one it no
  longer lists is removed, one it keeps unchanged is left alone. Hooks pushed over gRPC are never
  touched. Every command is parsed before anything is applied: a syntax error refuses the whole
  reload and names the command;
- the gRPC server's certificate, key and CA (from the next handshake on);
- with ``[mqtt] tls``, the agent's MQTT certificate: the publisher reconnects at once presenting
  the files as they are now (acknowledged batches are gone, the rest stay spooled and follow).

Nothing else restarts: the backend and its VMs, the spool with its unacknowledged batches, the
MQTT session, the epoch and the sequence numbers carry on. Other changed keys (backend,
listen address, broker, ...) are named in a ``reload-needs-restart`` warning. A reload that
fails leaves the running configuration as it was.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from dataclasses import fields, replace
from typing import TYPE_CHECKING

import structlog

from agent.config import AgentConfig
from agent.errors import AgentError, ConfigError, HookError
from agent.hooks.lang import parse
from agent.hooks.validate import check_spec
from agent.logs import set_level
from agent.publish.tls import mqtt_context

if TYPE_CHECKING:
    from agent.core import Agent
    from agent.rpc.tls import ServerTls
    from agent.supervisor import Supervisor
    from agent.wire import hooks_pb2

__all__ = ["Reloader", "restart_keys"]

log = structlog.get_logger("ioind.reload")


def restart_keys(old: AgentConfig, new: AgentConfig) -> list[str]:
    """Top-level keys whose change a reload cannot apply (they need a restart)."""
    grpc = replace(old.grpc, cert=new.grpc.cert, key=new.grpc.key, ca=new.grpc.ca)
    applied = replace(old, log_level=new.log_level, hooks=new.hooks, grpc=grpc)
    return [f.name for f in fields(AgentConfig) if getattr(applied, f.name) != getattr(new, f.name)]


class Reloader:
    """Applies ``load()`` to a running ``agent`` on SIGHUP (or :meth:`reload`)."""

    def __init__(
        self,
        agent: Agent,
        config: AgentConfig,
        load: Callable[[], AgentConfig],
        supervisor: Supervisor,
        tls: ServerTls | None = None,
    ) -> None:
        self._agent = agent
        self._load = load
        self._supervisor = supervisor
        self._tls = tls
        self.config = config  # what the agent runs with now
        self.reloads = 0
        self.failures = 0
        self._wanted = asyncio.Event()  # several SIGHUPs during one reload make one more reload

    async def run(self) -> None:
        """Reload on every SIGHUP until cancelled."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._wanted.set)
        try:
            while True:
                await self._wanted.wait()
                self._wanted.clear()
                await self.reload()
        finally:
            loop.remove_signal_handler(signal.SIGHUP)

    async def reload(self) -> bool:
        """Read and apply the config; False (and nothing changed) if it is refused."""
        async with self._supervisor.reloading():
            try:
                new = await asyncio.to_thread(self._load)  # file I/O off the event loop
                self._apply(new)
            except AgentError as exc:
                self.failures += 1
                problems = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
                log.error("reload-refused", problems=problems)
                return False
        self.reloads += 1
        return True

    def _apply(self, new: AgentConfig) -> None:
        old = self.config
        wanted = self._parse(new.hooks)  # refuses the reload before anything changes
        if self._tls is not None and not new.grpc.insecure:
            self._tls.reload(new.grpc)
        if new.mqtt.tls:  # the files must be usable before the publisher drops its connection
            mqtt_context(new.mqtt, self._agent.identity.host)
            self._agent.renew_tls()
        set_level(new.log_level)
        dropped = {spec.id for spec in self._parse(old.hooks)} - {spec.id for spec in wanted}
        changed = self._sync_hooks(wanted, dropped)
        self.config = new
        log.info("reloaded", log_level=new.log_level, hooks_changed=changed)
        if later := restart_keys(old, new):
            log.warning("reload-needs-restart", keys=later)

    @staticmethod
    def _parse(commands: tuple[str, ...]) -> list[hooks_pb2.HookSpec]:
        """Each command parsed and checked as the hook service will (syntax and combinations)."""
        specs = []
        for command in commands:
            try:
                specs.append(check_spec(parse(command)))
            except HookError as exc:
                raise ConfigError(f"hooks: '{command}': {exc}") from None
        return specs

    def _sync_hooks(self, wanted: list[hooks_pb2.HookSpec], dropped: set[str]) -> int:
        have = {h.spec.id: h.spec for h in self._agent.hooks()}
        changed = 0
        for hook_id in dropped & have.keys():
            self._agent.remove_hook(hook_id)
            changed += 1
        for spec in wanted:
            if have.get(spec.id) == spec:
                continue
            try:
                self._agent.set_hook(spec=spec)
                changed += 1
            except HookError as exc:  # e.g. a capability this backend lacks: named, not fatal
                log.error("hook-not-set", command=spec.command, error=str(exc))
        return changed
