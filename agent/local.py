"""``ioind local``: one backend, hooks from the command line, events on stdout.

No broker, no controller: the one-host tool (like HyperDbg on one machine) and the way to debug a
backend. Events print as one human line each, or with ``-o json`` one JSON object per line with
exactly the keys of :data:`agent.events.JSON_KEYS`. Guest console output and notices go to
stderr, prefixed, so stdout stays machine-readable.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
from typing import TextIO

from agent.batch import Block
from agent.config import AgentConfig
from agent.core import Agent
from agent.events import Event, to_json
from agent.hooks.lang import parse
from agent.notices import Notice, Route

__all__ = ["format_event", "run_local"]


def format_event(ev: Event) -> str:
    """One human-readable line."""
    when = dt.datetime.fromtimestamp(ev.ts / 1e9).strftime("%H:%M:%S.%f")
    parts = [
        when,
        f"#{ev.seq}",
        ev.hook_id,
        ev.dir.label.upper().ljust(3),
        f"port={ev.port:#06x}",
        f"size={ev.size}",
        f"value={ev.value:#x}",
        f"vm={ev.vm}({ev.vm_name})",
        f"vcpu={ev.vcpu}",
        ev.stage.label,
    ]
    if ev.string or ev.rep:
        parts.append(f"{'rep ' if ev.rep else ''}string count={ev.count} data={list(ev.data)[:8]}")
    if ev.rip is not None:
        parts.append(f"rip={ev.rip:#x}")
    if ev.value_set is not None:
        parts.append(f"set={ev.value_set:#x}")
    if ev.skipped:
        parts.append("skipped")
    if ev.break_id:
        parts.append(f"break={ev.break_id}")
    return " ".join(parts)


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
    printed = 0

    def emit(hook_id: str, batch: list[Event] | Block) -> None:
        nonlocal printed
        events = batch.events() if isinstance(batch, Block) else batch
        if output == "json":
            lines = [json.dumps(to_json(e, config.host, agent.epoch)) for e in events]
        else:
            lines = [format_event(e) for e in events]
        out.write("\n".join(lines) + "\n")
        out.flush()
        printed += len(events)

    def side(notice: Notice) -> None:
        fields = notice.fields
        if notice.route is Route.CONSOLE:
            err.write(
                f"[console {fields.get('vm_name', fields.get('vm'))}] {fields.get('text', '')}"
            )
            if not str(fields.get("text", "")).endswith("\n"):
                err.write("\n")
        else:
            err.write(f"[{notice.kind}] {json.dumps(dict(fields), default=str)}\n")
        err.flush()

    specs = [parse(c) for c in commands]  # HookSyntaxError before anything starts
    config = config.with_overrides(mqtt__batch_ms=min(config.mqtt.batch_ms, 20))
    agent = Agent(config, emit=emit, side=side, persist=False)
    async with agent:
        for spec in specs:
            agent.set_hook(spec)
        try:
            await _run_for(agent, seconds)
        except* BrokenPipeError:  # the reader went away (`ioind local ... | head`): done
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
    return printed


async def _run_for(agent: Agent, seconds: float | None) -> None:
    try:
        async with asyncio.timeout(seconds):
            await agent.run(publish=False)
    except TimeoutError:
        agent.pipeline.flush()
