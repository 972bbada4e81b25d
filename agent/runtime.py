"""The runtime: one agent's task group, from start to stop.

:class:`Runtime` is an async context manager: entering opens the backend and restores the hooks
(config file, then state file); leaving closes the backend and flushes the pipeline's partial
batches to its output (so nothing triggered is lost), then runs the ``closers`` (the spool).
:meth:`Runtime.run` is the agent as one :class:`asyncio.TaskGroup`: the backend producing into
the pipeline, the pipeline cutting aged batches, the hook service applying what scripts ask of
hooks (``event_disable``, ...), and whatever the caller adds (the publisher, the
drop notices, the gRPC server). The first task to fail cancels the others; cancelling ``run``
stops them all. ``ready`` is set once the backend is producing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Self

from agent.backends import Backend
from agent.hooks.service import HookService
from agent.pipeline import Pipeline

__all__ = ["Runtime", "Task"]

Task = Callable[[], Coroutine[Any, Any, None]]


class Runtime:
    """Backend → pipeline, with the hook service restoring into the table they share."""

    def __init__(
        self,
        hooks: HookService,
        backend: Backend,
        pipeline: Pipeline,
        *,
        restore: Iterable[str] = (),
        closers: Iterable[Callable[[], None]] = (),
    ) -> None:
        self.hooks = hooks
        self.backend = backend
        self.pipeline = pipeline
        self.ready = asyncio.Event()
        self._restore = tuple(restore)
        self._closers = tuple(closers)

    async def __aenter__(self) -> Self:
        await self.backend.__aenter__()
        self.hooks.restore(self._restore)
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.backend.__aexit__(None, None, None)
        finally:
            self.pipeline.flush()  # partial batches reach the output: nothing triggered is lost
            for close in self._closers:
                close()

    async def run(self, *tasks: Task) -> None:
        """Run backend, pipeline and ``tasks`` until cancelled or one of them fails."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(
                self.backend.run(self.hooks.table, self.pipeline, self.ready.set), name="backend"
            )
            tg.create_task(self.pipeline.run(), name="pipeline")
            tg.create_task(self.hooks.serve(self.pipeline.notice), name="hook-requests")
            for task in tasks:
                tg.create_task(task())
