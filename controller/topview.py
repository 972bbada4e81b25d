"""Rendering the aggregator's views: the ``top`` table (sparklines, rates, alerts) and query
results as a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import UTC, datetime
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from agent.wire import aggregator_pb2 as pb

__all__ = ["query_csv", "query_json", "query_table", "snapshot_json", "sparkline", "top_view"]

_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[int]) -> str:
    """One bar per value, scaled to the largest (all-zero: the lowest bar)."""
    top = max(values, default=0)
    if top <= 0:
        return _BARS[0] * len(values)
    return "".join(_BARS[min(len(_BARS) - 1, v * (len(_BARS) - 1) // top)] for v in values)


def _ago(ts_ns: int) -> str:
    if not ts_ns:
        return "-"
    secs = max(0.0, time.time() - ts_ns / 1e9)
    return f"{secs:.0f}s ago" if secs < 120 else f"{secs / 60:.0f}m ago"


def top_view(snap: pb.TopSnapshot, title: str) -> Group:
    """The ``perf kvm stat live``-like table: hottest (host, vm, port) first."""
    table = Table(title=title, title_justify="left", expand=False)
    for col, justify in (
        ("HOST", "left"), ("VM", "right"), ("PORT", "right"), ("DIR", "left"),
        ("RATE/s", "right"), ("EVENTS", "right"), (f"LAST {snap.window_s}s", "left"),
        ("LAST EVENT", "right"),
    ):  # fmt: skip
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in snap.rows:
        vm = f"{r.vm} {r.vm_name}".strip() if r.vm_name else str(r.vm)
        table.add_row(
            r.host, vm, f"{r.port:#06x}", r.dir, f"{r.rate:,.1f}", f"{r.events:,}",
            sparkline(list(r.spark)), _ago(r.last_ts),
        )  # fmt: skip
    parts: list[Any] = [Text(f"ingest {snap.ingest_rate:,.0f} events/s"), table]
    if snap.alerts:
        alerts = Table(title="alerts", title_justify="left", show_header=False)
        for a in snap.alerts:
            alerts.add_row(
                _ago(a.ts), a.rule, a.host, f"vm {a.vm}", f"{a.port:#06x}", a.dir, a.reason
            )
        parts.append(alerts)
    return Group(*parts)


def snapshot_json(snap: pb.TopSnapshot) -> dict[str, Any]:
    return {
        "ts": snap.ts,
        "window_s": snap.window_s,
        "ingest_rate": snap.ingest_rate,
        "rows": [
            {
                "host": r.host, "vm": r.vm, "vm_name": r.vm_name, "port": r.port, "dir": r.dir,
                "rate": r.rate, "events": r.events, "spark": list(r.spark), "last_ts": r.last_ts,
            }
            for r in snap.rows
        ],
        "alerts": [
            {"rule": a.rule, "host": a.host, "vm": a.vm, "port": a.port, "dir": a.dir,
             "reason": a.reason, "ts": a.ts}
            for a in snap.alerts
        ],
    }  # fmt: skip


def _rows(reply: pb.QueryReply) -> list[list[Any]]:
    return [[*r.keys, r.events] for r in reply.rows]


def _values(row: pb.QueryRow) -> str:
    return " ".join(f"{v.value:#x}:{v.events:,}" for v in row.values)  # value:events


def query_table(reply: pb.QueryReply, title: str) -> Table:
    table = Table(title=title or None, title_justify="left")
    for col in reply.columns:
        table.add_column(col.upper(), justify="right" if col == "events" else "left")
    table.add_column("TOP VALUES")
    for row, r in zip(_rows(reply), reply.rows, strict=True):
        cells = [f"{v:,}" if isinstance(v, int) else str(v) for v in row]
        table.add_row(*cells, _values(r))
    return table


def query_json(reply: pb.QueryReply) -> str:
    docs = [
        dict(zip(reply.columns, row, strict=True))
        | {
            "first": datetime.fromtimestamp(r.first_ts / 1e9, UTC).isoformat(),
            "last": datetime.fromtimestamp(r.last_ts / 1e9, UTC).isoformat(),
            "values": [{"value": v.value, "events": v.events} for v in r.values],
        }
        for row, r in zip(_rows(reply), reply.rows, strict=True)
    ]
    return json.dumps(docs, indent=2)


def query_csv(reply: pb.QueryReply) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(reply.columns)
    writer.writerows(_rows(reply))
    return buf.getvalue()
