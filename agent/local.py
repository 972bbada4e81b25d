"""``ioind local``: one backend, hooks from the command line, events on stdout.

No broker, no controller: the one-host tool (like HyperDbg on one machine) and the way to debug a
backend. Events print as one human line each (:func:`agent.eventline.event_line`, the line
``ioinctl watch`` prints too), or with ``-o json`` one JSON object per line with exactly the keys
of :data:`agent.events.JSON_KEYS`. Guest console output and notices go to stderr, prefixed, so
stdout stays machine-readable. Nothing is published or persisted: no outbox, spool, publisher
or state file is built (:func:`agent.build.build_local`).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import TextIO

from agent.build import build_local
from agent.columns import Block
from agent.config import AgentConfig
from agent.eventline import event_line
from agent.events import Event, to_json
from agent.hooks.lang import parse
from agent.notices import Notice, Route
from agent.pipeline import Batch
from agent.runtime import Runtime
from agent.status import Identity

__all__ = ["LocalPrinter", "run_local"]


class LocalPrinter:
    """The pipeline's output for ``ioind local``: events to ``out``, notices to ``err``."""

    def __init__(self, identity: Identity, output: str, out: TextIO, err: TextIO) -> None:
        self._me = identity
        self._json = output == "json"
        self._out = out
        self._err = err
        self.printed = 0

    def emit(self, hook_id: str, batch: Batch) -> None:
        events: list[Event] = batch.events() if isinstance(batch, Block) else batch
        objs = [to_json(e, self._me.host, self._me.epoch) for e in events]
        lines = [json.dumps(o) for o in objs] if self._json else [event_line(o) for o in objs]
        self._out.write("\n".join(lines) + "\n")
        self._out.flush()
        self.printed += len(events)

    def notice(self, notice: Notice) -> None:
        kind, fields = notice
        if notice.route is Route.CONSOLE:
            text = str(fields.get("text", ""))
            self._err.write(f"[console {fields.get('vm_name', fields.get('vm'))}] {text}")
            if not text.endswith("\n"):
                self._err.write("\n")
        else:
            self._err.write(f"[{kind}] {json.dumps(dict(fields), default=str)}\n")
        self._err.flush()


async def run_local(
    config: AgentConfig,
    commands: list[str],
    *,
    output: str = "text",
    seconds: float | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Run until ``seconds`` pass (or forever); returns the number of events printed."""
    for command in commands:
        parse(command)  # HookSyntaxError before anything starts
    config = config.with_overrides(mqtt__batch_ms=min(config.mqtt.batch_ms, 20))
    printer = LocalPrinter(Identity.new(config.host), output, out, err)
    runtime = build_local(config, printer)
    async with runtime:
        for command in commands:
            runtime.hooks.set(command=command)
        try:
            await _run_for(runtime, seconds)
        except* BrokenPipeError:  # the reader went away (`ioind local ... | head`): done
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
    return printer.printed


async def _run_for(runtime: Runtime, seconds: float | None) -> None:
    try:
        async with asyncio.timeout(seconds):
            await runtime.run()
    except TimeoutError:
        runtime.pipeline.flush()
