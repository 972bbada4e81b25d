"""``ioinctl hosts``: the agents the broker knows, from their retained births and wills."""

from __future__ import annotations

import asyncio
import datetime
import json
import sys
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from controller.discovery import Agent, discover
from controller.options import DEFAULT_BROKER, OutputOpt, SelectorOpt
from controller.render import Output, console
from controller.selectors import parse_selector

__all__ = ["hosts"]


def hosts(
    broker: Annotated[
        str,
        typer.Option(envvar="IOIN_BROKER", help="MQTT broker HOST:PORT."),
    ] = DEFAULT_BROKER,
    selector: SelectorOpt = None,
    online: Annotated[bool, typer.Option("--online", help="Only agents online now.")] = False,
    output: OutputOpt = Output.TABLE,
) -> int:
    """List agents: name, address, labels, online, backend, hooks, epoch, last seen."""
    chosen = parse_selector(selector or "")
    found = asyncio.run(discover(broker))
    agents = found.select(chosen, online_only=False)
    if online:
        agents = [a for a in agents if a.online]
    up = sum(a.online for a in agents)
    line = f"hosts: {len(agents)} agents, {up} online, {len(agents) - up} offline ({broker})"
    if output is Output.TABLE:
        console().print(_table(agents))
        print(line, flush=True)
        return 0
    docs = [a.json() for a in agents]
    if output is Output.JSON:
        print(json.dumps({"broker": broker, "agents": docs}, indent=2), flush=True)
    else:
        for doc in docs:
            print(json.dumps(doc, separators=(",", ":")), flush=True)
    print(line, file=sys.stderr, flush=True)
    return 0


def _table(agents: list[Agent]) -> Table:
    table = Table("name", "address", "labels", "online", "backend", "hooks", "epoch", "last seen")
    for a in agents:
        labels = ",".join(f"{k}={v}" for k, v in sorted(a.labels.items()))
        state = Text("yes", style="green") if a.online else Text("no", style="red")
        cells = [a.name, a.address, labels]
        tail = [a.backend, str(len(a.hooks)), a.epoch, _when(a.last_seen_ns)]
        table.add_row(*map(Text, cells), state, *map(Text, tail))
    return table


def _when(ns: int) -> str:
    if not ns:
        return ""
    stamp = datetime.datetime.fromtimestamp(ns / 1e9, datetime.UTC)
    return stamp.strftime("%Y-%m-%d %H:%M:%S")
