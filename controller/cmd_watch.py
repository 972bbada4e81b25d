"""``ioinctl watch``: live events from the broker, then a per-host summary.

Ctrl-C is the normal way to stop (besides ``--seconds``): the summary is printed either way.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from agent.decode_guard import printable
from agent.model import check_id
from controller.brokerlogin import (
    BrokerLogin,
    MqttCaOpt,
    MqttCertOpt,
    MqttKeyOpt,
    PasswordOpt,
    UsernameOpt,
)
from controller.errors import UsageError
from controller.gaps import MAX_JUMP, MAX_STREAMS, GapChecker
from controller.inventory import load_inventory, split_address
from controller.options import InventoryOpt, OutputOpt, number
from controller.render import Output, console, warn
from controller.watch import WatchConfig, Watcher

__all__ = ["gap_table", "summary_table", "watch"]

_MAX_PORTS = 12  # ports listed per host in the summary before "+N more"


def watch(
    broker: Annotated[
        str | None,
        typer.Option(envvar="IOIN_BROKER", help="MQTT broker HOST:PORT (default 127.0.0.1:1883)."),
    ] = None,
    host: Annotated[str | None, typer.Option("--host", help="Only this host id.")] = None,
    hook: Annotated[str | None, typer.Option("--hook", help="Only this hook id.")] = None,
    port: Annotated[
        str | None, typer.Option("--port", help="Only this I/O port (0x.. ok).")
    ] = None,
    seconds: Annotated[float | None, typer.Option("--seconds", help="Stop after N s.")] = None,
    notices: Annotated[bool, typer.Option("--notices", help="Also show notices.")] = False,
    breaks: Annotated[bool, typer.Option("--breaks", help="Also show paused vCPUs.")] = False,
    check_gaps: Annotated[
        bool,
        typer.Option("--check-gaps", help="Report lost and duplicated sequence numbers per host."),
    ] = False,
    gap_grace: Annotated[
        float, typer.Option("--gap-grace", help="Seconds before a missing number counts as lost.")
    ] = 5.0,
    username: UsernameOpt = None,
    password: PasswordOpt = None,
    mqtt_ca: MqttCaOpt = None,
    mqtt_cert: MqttCertOpt = None,
    mqtt_key: MqttKeyOpt = None,
    inventory: InventoryOpt = None,
    output: OutputOpt = Output.TABLE,
) -> int:
    """Print events as agents publish them (``-o json`` or ``jsonl``: one object per line)."""
    output = Output.JSON if output is Output.JSONL else output  # events are a stream either way
    if check_gaps and hook is not None:
        raise UsageError("--check-gaps needs every hook's events: it cannot be used with --hook")
    login = BrokerLogin(username, password, mqtt_ca, mqtt_cert, mqtt_key)
    if gap_grace <= 0:
        raise UsageError(f"--gap-grace must be positive, got {gap_grace:g}")
    cfg = WatchConfig(
        broker=_broker(broker, inventory),
        host=_id("--host", "host id", host),
        hook=_id("--hook", "hook id", hook),
        port=None if port is None else number("--port", port, 0xFFFF),
        notices=notices,
        breaks=breaks,
        output=output,
        seconds=_seconds(seconds),
        login=login,
        check_gaps=check_gaps,
        gap_grace=gap_grace,
    )
    watcher = Watcher(cfg)
    try:
        asyncio.run(watcher.run())
    except KeyboardInterrupt:
        pass  # the normal way to stop a watch without --seconds
    finally:
        _summary(watcher, output)
    return 0


def summary_table(watcher: Watcher) -> Table:
    """Per host: events seen, hooks they came from, ports they touched."""
    table = Table("host", "events", "hooks", "ports", title="ioinctl watch: summary")
    for host, t in sorted(watcher.tally.items()):
        ports = [f"{p:#06x}" for p in sorted(t.ports)]
        more = f" +{len(ports) - _MAX_PORTS} more" if len(ports) > _MAX_PORTS else ""
        ports_text = " ".join(ports[:_MAX_PORTS]) + more
        hooks = ",".join(sorted(t.hooks)) + (
            f" +{t.more_hooks} events of more" if t.more_hooks else ""
        )
        table.add_row(Text(host), str(t.events), Text(hooks), Text(ports_text))
    return table


def _summary(watcher: Watcher, output: Output) -> None:
    # With -o json, stdout carries only events: the summary goes to stderr.
    out = Console(stderr=True, highlight=False) if output is Output.JSON else console()
    out.print(summary_table(watcher))
    if not watcher.tally:
        out.print("no events received")
    if watcher.junk:
        warn(f"{watcher.junk} malformed payloads ignored")
    if watcher.gaps is not None:
        out.print(gap_table(watcher.gaps))


def gap_table(gaps: GapChecker) -> Table:
    """Per host and epoch: received, lost, duplicated, and the first lost ranges."""
    table = Table(
        "host",
        "epoch",
        "received",
        "missing",
        "duplicates",
        "missing ranges",
        title="ioinctl watch: sequence check",
    )
    for (host, epoch), t in sorted(gaps.streams.items()):
        ranges = " ".join(f"{lo}..{hi}" if hi > lo else str(lo) for lo, hi in t.ranges[:8])
        more = f" +{len(t.ranges) - 8} more" if len(t.ranges) > 8 else ""
        table.add_row(
            Text(host),
            Text(printable(epoch)),
            str(t.received),
            str(t.missing),
            str(t.duplicates),
            Text(ranges + more),
        )
    notes = []
    if gaps.unsettled():
        notes.append(f"{gaps.unsettled()} numbers still in flight when the watch ended")
    if odd := sum(t.implausible for t in gaps.streams.values()):
        notes.append(f"{odd} implausible numbers (over {MAX_JUMP} ahead) skipped")
    if gaps.untracked:
        notes.append(f"{gaps.untracked} events of streams beyond the first {MAX_STREAMS} unchecked")
    table.caption = "; ".join(notes) or None
    return table


def _broker(flag: str | None, inventory: Path | None) -> str:
    broker = flag or (load_inventory(inventory).defaults.broker if inventory else None)
    broker = broker or "127.0.0.1:1883"
    try:
        split_address(broker)
    except ValueError as e:
        raise UsageError(f"--broker: {e}") from None
    return broker


def _id(flag: str, kind: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_id(kind, value)
    except ValueError as e:
        raise UsageError(f"{flag}: {e}") from None


def _seconds(value: float | None) -> float | None:
    if value is not None and value <= 0:
        raise UsageError(f"--seconds must be positive, got {value:g}")
    return value
