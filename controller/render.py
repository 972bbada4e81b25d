"""Output: rich tables for people, JSON (``-o json``) for scripts.

A fan-out command renders one :class:`View` over its per-host results. The table has a row per
host (or per item a host returned) with the error text where the host failed; the JSON is one
array with an object per host: ``host``, ``address``, ``ok``, ``error`` (``null`` or
``{"kind", "code", "message"}``) and the command's own fields.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from controller.client import HostResult, exit_code
from controller.errors import AgentUnreachable, ControllerError, RemoteError

__all__ = [
    "Output",
    "View",
    "console",
    "error_json",
    "print_json",
    "render",
    "report",
    "short_error",
    "warn",
]

Row = Sequence[object]


class Output(StrEnum):
    """``-o`` / ``--output``."""

    TABLE = "table"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class View:
    """How one command shows a host's answer: table columns and rows, and its JSON fields."""

    columns: Sequence[str]
    rows: Callable[[Any], list[Row]]
    fields: Callable[[Any], dict[str, Any]]


def console() -> Console:
    """A console on stdout; wide enough off a terminal that error text is not wrapped away."""
    width = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200
    return Console(width=width, highlight=False, soft_wrap=False)


def warn(message: str) -> None:
    """One line on stderr, prefixed with the program's name."""
    print(f"ioinctl: {message}", file=sys.stderr, flush=True)


def print_json(doc: Any) -> None:
    """One JSON document on stdout."""
    print(json.dumps(doc, indent=2), flush=True)


def error_json(err: ControllerError) -> dict[str, Any]:
    """A controller error as JSON: its kind, the gRPC code where there is one, the message."""
    kind = {AgentUnreachable: "unreachable", RemoteError: "remote"}.get(type(err), "error")
    code = err.code if isinstance(err, RemoteError) else None
    return {"kind": kind, "code": code, "message": str(err)}


def render(results: Sequence[HostResult[Any]], view: View, output: Output) -> None:
    """Show every host's result as a table, or as a JSON array; failures also go to stderr."""
    if output is Output.JSON:
        print_json([_host_json(r, view) for r in results])
    else:
        console().print(_table(results, view))
    failed = [r for r in results if not r.ok]
    for r in failed:
        warn(str(r.error))
    if failed:
        warn(f"{len(failed)} of {len(results)} hosts failed")


def report(results: Sequence[HostResult[Any]], view: View, output: Output) -> int:
    """Render the results and return the fan-out exit code (0 all ok, 2 some, 1 none)."""
    render(results, view, output)
    return exit_code(results)


def short_error(err: ControllerError) -> str:
    """The error without the host's name (for a table whose row already names the host)."""
    if isinstance(err, AgentUnreachable):
        return f"unreachable ({err.address}): {err.reason}"
    if isinstance(err, RemoteError):
        return f"{err.code}: {err.details}"
    return str(err)


def _host_json(result: HostResult[Any], view: View) -> dict[str, Any]:
    doc: dict[str, Any] = {"host": result.host.name, "address": result.host.address}
    doc["ok"] = result.ok
    doc["error"] = error_json(result.error) if result.error else None
    if result.ok:
        doc |= view.fields(result.value)
    return doc


def _table(results: Sequence[HostResult[Any]], view: View) -> Table:
    errors = any(not r.ok for r in results)  # the error column only when there is one
    table = Table("host", "result", *view.columns, *(["error"] if errors else []))
    for r in results:
        if r.error is not None:
            blanks = [""] * len(view.columns)
            error = Text(short_error(r.error))
            table.add_row(Text(r.host.name), Text("error", style="red"), *blanks, error)
            continue
        for row in view.rows(r.value) or [[""] * len(view.columns)]:
            cells = [Text(_cell(c)) for c in row] + ([Text("")] if errors else [])
            table.add_row(Text(r.host.name), Text("ok", style="green"), *cells)
    return table


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)
