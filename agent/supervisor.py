"""What systemd sees of a running agent: readiness, status lines, watchdog pings, reloads.

:class:`Supervisor` runs as one task of the agent's task group:

- **Readiness.** It waits for ``ready`` (the gRPC server listens and the backend produces), then
  sends ``READY=1`` with a first ``STATUS=`` line.
- **Status.** Once a second it renders the status (backend, hooks, broker, spool depth) and sends
  it when it changed, so ``systemctl status ioind`` shows the agent's state without a flood.
- **Watchdog.** With ``$WATCHDOG_USEC`` set it sends ``WATCHDOG=1`` every half interval, as
  sd_watchdog_enabled(3) advises, and only when ``healthy()`` holds. The pings come from a
  coroutine on the event loop, not from a thread: when the loop is blocked (a write to a stdout
  nobody reads, a hung file system) the pings stop and systemd restarts the agent.
- **Reload.** :meth:`Supervisor.reloading` brackets a reload with ``RELOADING=1`` and ``READY=1``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import structlog

from agent.sdnotify import Notifier

if TYPE_CHECKING:
    from agent.wire import agent_pb2

__all__ = ["STATUS_PERIOD_S", "Supervisor", "all_set", "status_line"]

log = structlog.get_logger("ioind.supervisor")

STATUS_PERIOD_S = 1.0


class Supervisor:
    """Speaks for the agent to its service manager through ``notifier``."""

    def __init__(
        self,
        notifier: Notifier,
        *,
        status: Callable[[], str],
        healthy: Callable[[], bool],
        watchdog_s: float | None = None,
    ) -> None:
        self.notifier = notifier
        self._status = status
        self._healthy = healthy
        self.watchdog_s = watchdog_s
        self.ready = False
        self.pings = 0
        self.pings_withheld = 0  # watchdog periods in which the agent was not healthy
        self._shown = ""

    async def run(self, ready: Awaitable[object]) -> None:
        """Announce readiness once ``ready`` completes, then keep status and watchdog going."""
        await ready
        self._shown = self._status()
        self.notifier.ready(self._shown)
        self.ready = True
        log.info("ready", status=self._shown, watchdog_s=self.watchdog_s)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._report(), name="sd-status")
                if self.watchdog_s:
                    tg.create_task(self._watchdog(self.watchdog_s / 2), name="sd-watchdog")
        finally:
            self.notifier.stopping()

    @contextlib.asynccontextmanager
    async def reloading(self) -> AsyncIterator[None]:
        """``RELOADING=1`` now, ``READY=1`` (with the new status) when the block ends."""
        self.notifier.reloading()
        try:
            yield
        finally:
            self._shown = self._status()
            self.notifier.ready(self._shown)

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(STATUS_PERIOD_S)
            text = self._status()
            if text != self._shown:
                self.notifier.status(text)
                self._shown = text

    async def _watchdog(self, period: float) -> None:
        was_healthy = True
        while True:
            healthy = self._healthy()
            if healthy:
                self.notifier.watchdog()
                self.pings += 1
            else:
                self.pings_withheld += 1
            if healthy != was_healthy:  # logged on the change, not every period
                log.warning("watchdog-" + ("resumed" if healthy else "withheld"))
                was_healthy = healthy
            await asyncio.sleep(period)


def status_line(status: agent_pb2.Status) -> str:
    """The one line systemd shows, from GetStatus: backend, hooks, broker, spool depth."""
    spool = next((c.value for c in status.counters if c.name == "spool_batches"), 0)
    broker = "connected" if status.broker_connected else "disconnected"
    hooks = len(status.hooks)
    return f"backend {status.backend}, {hooks} hooks, broker {broker}, spool {spool} batches"


async def all_set(*events: asyncio.Event) -> None:
    """Wait until every event is set."""
    for event in events:
        await event.wait()
