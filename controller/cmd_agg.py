"""``ioinctl top`` and ``ioinctl query``: the aggregator's views of the whole fleet."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live

from agent.wire import aggregator_pb2 as pb
from controller import aggclient
from controller.aggclient import AggTarget
from controller.errors import UsageError
from controller.options import CaOpt, CertOpt, InsecureOpt, InventoryOpt, KeyOpt, number
from controller.render import console, print_json
from controller.topview import (
    query_csv,
    query_json,
    query_table,
    snapshot_json,
    top_view,
)

__all__ = ["parse_duration", "query", "top"]

AggregatorOpt = Annotated[
    str | None,
    typer.Option(
        "--aggregator",
        envvar="IOIN_AGGREGATOR",
        help="ioinagg HOST:PORT (or the inventory's defaults.aggregator).",
    ),
]
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class QueryOutput(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


def parse_duration(text: str) -> int:
    """``90s``, ``15m``, ``1h``, ``7d`` or plain seconds."""
    m = re.fullmatch(r"(\d+)([smhd]?)", text.strip())
    if not m or int(m.group(1)) == 0:
        raise UsageError(f"--since: '{text}' is not a duration like 90s, 15m, 1h, 7d")
    return int(m.group(1)) * _UNITS[m.group(2) or "s"]


def _target(
    aggregator: str | None,
    inventory: Path | None,
    ca: str | None,
    cert: str | None,
    key: str | None,
    insecure: bool,
) -> AggTarget:
    return aggclient.resolve_target(
        aggregator, inventory, ca=ca, cert=cert, key=key, insecure=insecure
    )


def query(
    since: Annotated[str, typer.Option(help="How far back: 90s, 15m, 1h, 7d.")] = "1h",
    by: Annotated[str, typer.Option(help="Group by: host,vm,vm_name,vcpu,dir,port,hook.")] = "host",
    where: Annotated[
        str, typer.Option(help="Filter: key=value,... (port=0x3f0-0x3f7, dir=in).")
    ] = "",
    limit: Annotated[int, typer.Option(help="Rows, most events first.")] = 1000,
    output: Annotated[QueryOutput, typer.Option("--output", "-o")] = QueryOutput.TABLE,
    aggregator: AggregatorOpt = None,
    inventory: InventoryOpt = None,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
    insecure: InsecureOpt = False,
) -> int:
    """Exact event counts over a time window, grouped by the keys given."""
    t = _target(aggregator, inventory, ca, cert, key, insecure)
    keys = [k.strip() for k in by.split(",") if k.strip()]
    reply = asyncio.run(aggclient.query(t, parse_duration(since), keys, where, limit))
    if output is QueryOutput.JSON:
        print(query_json(reply), flush=True)
    elif output is QueryOutput.CSV:
        print(query_csv(reply), end="", flush=True)
    else:
        start = datetime.fromtimestamp(reply.start_ts / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")
        con = console()
        con.print(f"events since {start} UTC ({reply.bucket_s} s buckets), by {','.join(keys)}")
        con.print(query_table(reply, ""))
    return 0


def top(
    sort: Annotated[str, typer.Option(help="rate, events, host, port or last.")] = "rate",
    limit: Annotated[int, typer.Option(help="Rows.")] = 20,
    window: Annotated[int, typer.Option(help="Rate over the last N seconds.")] = 10,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 1.0,
    host: Annotated[list[str] | None, typer.Option("--host", help="Only these hosts.")] = None,
    port: Annotated[list[str] | None, typer.Option("--port", help="Only these ports.")] = None,
    hook: Annotated[list[str] | None, typer.Option("--hook", help="Only these hooks.")] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", help="Only hosts with KEY=VALUE.")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Print one snapshot and exit.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Snapshots as JSON.")] = False,
    aggregator: AggregatorOpt = None,
    inventory: InventoryOpt = None,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
    insecure: InsecureOpt = False,
) -> int:
    """The hottest (host, vm, port) of the fleet by rate, live (like perf kvm stat live)."""
    t = _target(aggregator, inventory, ca, cert, key, insecure)
    labels = {}
    for item in label or []:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise UsageError(f"--label: '{item}' is not KEY=VALUE")
        labels[k] = v
    request = pb.TopRequest(
        limit=limit, interval_s=interval, window_s=window, sort=sort, hosts=host or [],
        ports=[number("--port", p, 0xFFFF) for p in port or []], hooks=hook or [],
        labels=labels, once=once,
    )  # fmt: skip
    asyncio.run(_top(t, request, json_out))
    return 0


async def _top(t: AggTarget, request: pb.TopRequest, json_out: bool) -> None:
    title = f"ioinctl top — {t.host.address} — by {request.sort}"
    if request.once or json_out:
        async for snap in aggclient.top(t, request):
            if json_out:
                print_json(snapshot_json(snap))
            else:
                console().print(top_view(snap, title))
        return
    with Live(console=console(), auto_refresh=False, screen=True) as live:
        async for snap in aggclient.top(t, request):
            live.update(top_view(snap, title), refresh=True)
