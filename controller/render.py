"""Output at fleet scale: a summary line always, a grouped table, JSON, or JSON lines.

- **Table** (default): failed hosts first, one short line each; then hosts not attempted; then
  the hosts that succeeded, grouped by identical result ("997 hosts: ok unchanged"). ``--wide``
  gives every host's rows instead. Error text is cleaned of control bytes.
- **JSON** (``-o json``): one document, ``{"summary": {...}, "hosts": [...]}``.
- **JSON lines** (``-o jsonl``): one object per host, printed the moment its result arrives.
- Always one summary line, e.g. ``push: 1000 hosts, 997 ok (12 created, 985 unchanged),
  3 failed, 1.42 s`` (on stdout after a table; on stderr with JSON so stdout stays parseable).
- Progress on stderr while results come in, when stderr is a terminal.

A host in JSON: ``host``, ``address``, ``state`` (ok, failed, skipped), ``ok``, ``error``
(``null`` or ``{"kind", "code", "message"}``; ``kind`` is refused, timeout, tls, unreachable or
remote), ``skipped`` (why it was not attempted), ``attempts``, ``elapsed_s``, and the command's
own fields.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from controller.client import HostResult, clean
from controller.errors import AgentUnreachable, ControllerError, RemoteError
from controller.progress import Progress

__all__ = [
    "Output",
    "Report",
    "Row",
    "View",
    "console",
    "error_json",
    "print_json",
    "short_error",
    "warn",
]

Row = Sequence[object]
_SHORT = 120  # characters of an error in the default table; --wide shows all of it
_GROUP_NAMES = 3  # host names shown per group before "…"
_STDERR_FAILURES = 10  # failures also written to stderr, one line each, before "... and N more"
_INDENTED_HOSTS = 100  # larger JSON documents are printed compact (indenting cost 0.2 s at 1,000)


class Output(StrEnum):
    """``-o`` / ``--output``."""

    TABLE = "table"
    JSON = "json"
    JSONL = "jsonl"


def _ok(_: Any) -> str:
    return "ok"


@dataclass(frozen=True, slots=True)
class View:
    """How one command shows a host's answer.

    ``columns``/``rows`` make the wide table; ``fields`` the JSON; ``outcome`` the short text
    that groups identical results, and that the summary line counts when ``counted``
    (``12 created, 985 unchanged``; a listing's outcome groups hosts but is no count).
    """

    columns: Sequence[str]
    rows: Callable[[Any], list[Row]]
    fields: Callable[[Any], dict[str, Any]]
    outcome: Callable[[Any], str] = field(default=_ok)
    counted: bool = True


def console() -> Console:
    """A console on stdout; wide enough off a terminal that error text is not wrapped away."""
    width = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200
    return Console(width=width, highlight=False, soft_wrap=False)


_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def warn(message: str) -> None:
    """One line on stderr, prefixed with the program's name. Control characters (an escape
    sequence in a host name, a selector, a hook or a file given to us) are shown as hex escapes,
    never sent to the terminal."""
    shown = _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", message)
    print(f"ioinctl: {shown}", file=sys.stderr, flush=True)


def print_json(doc: Any, *, compact: bool = False) -> None:
    """One JSON document on stdout (indented unless ``compact``)."""
    text = json.dumps(doc, separators=(",", ":")) if compact else json.dumps(doc, indent=2)
    print(text, flush=True)


def error_json(err: ControllerError) -> dict[str, Any]:
    """A controller error as JSON: its kind, the gRPC code where there is one, the message."""
    if isinstance(err, AgentUnreachable):
        kind = err.kind
    else:
        kind = "remote" if isinstance(err, RemoteError) else "error"
    code = err.code if isinstance(err, RemoteError) else None
    return {"kind": kind, "code": code, "message": clean(str(err))}


def short_error(err: ControllerError) -> str:
    """The error without the host's name (for a row that names the host already)."""
    if isinstance(err, AgentUnreachable):
        return clean(f"{err.kind}: {err.reason}")
    if isinstance(err, RemoteError):
        return clean(f"{err.code}: {err.details}")
    return clean(str(err))


class Report:
    """One command's output: fed each result as it arrives, then finished with all of them."""

    def __init__(
        self,
        command: str,
        view: View,
        output: Output,
        *,
        wide: bool = False,
        detail: Callable[[Any], list[tuple[str, str]]] | None = None,
    ) -> None:
        """``detail`` shows one host's answer as (name, value) lines instead of a table."""
        self.command, self.view, self.output, self.wide = command, view, output, wide
        self.detail = detail
        self.progress: Progress | None = None

    def start(self, total: int) -> None:
        """Begin: progress on stderr when it is a terminal (and output is not streamed)."""
        if sys.stderr.isatty() and self.output is not Output.JSONL:
            self.progress = Progress(self.command, total)

    def on_result(self, result: HostResult[Any]) -> None:
        if self.progress is not None:
            self.progress.update(result.state)
        if self.output is Output.JSONL:
            sys.stdout.write(json.dumps(self.host_json(result), separators=(",", ":")) + "\n")
            sys.stdout.flush()

    def finish(self, results: Sequence[HostResult[Any]], elapsed: float) -> None:
        """Print the table or JSON document, failures on stderr, and the summary line."""
        if self.progress is not None:
            self.progress.close()
        line = self.summary_line(results, elapsed)
        if self.output is Output.JSON:
            doc = {"summary": self.summary(results, elapsed), "hosts": self._hosts(results)}
            print_json(doc, compact=len(results) > _INDENTED_HOSTS)
        elif self.output is Output.TABLE:
            console().print(self._table(results))
        failed = [r for r in results if r.error is not None]
        for r in failed[:_STDERR_FAILURES]:
            text = clean(str(r.error))
            warn(text if r.host.name in text else f"{r.host.name}: {text}")
        if len(failed) > _STDERR_FAILURES:
            warn(f"... and {len(failed) - _STDERR_FAILURES} more failed hosts")
        if self.output is Output.TABLE:
            print(line, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    # -- the summary ------------------------------------------------------------------------

    def summary(self, results: Sequence[HostResult[Any]], elapsed: float) -> dict[str, Any]:
        outcomes = Counter(self.view.outcome(r.value) for r in results if r.ok)
        return {
            "command": self.command,
            "hosts": len(results),
            "ok": sum(r.ok for r in results),
            "outcomes": dict(sorted(outcomes.items())),
            "failed": sum(r.error is not None for r in results),
            "not_attempted": sum(bool(r.skipped) for r in results),
            "elapsed_s": round(elapsed, 3),
        }

    def summary_line(self, results: Sequence[HostResult[Any]], elapsed: float) -> str:
        s = self.summary(results, elapsed)
        ok = f"{s['ok']} ok"
        if self.view.counted and set(s["outcomes"]) - {"ok"}:
            ok += " (" + ", ".join(f"{n} {what}" for what, n in s["outcomes"].items()) + ")"
        hosts = f"{s['hosts']} host" + ("" if s["hosts"] == 1 else "s")
        parts = [hosts, ok, f"{s['failed']} failed"]
        if s["not_attempted"]:
            parts.append(f"{s['not_attempted']} not attempted")
        return f"{self.command}: {', '.join(parts)}, {elapsed:.2f} s"

    # -- JSON -------------------------------------------------------------------------------

    def host_json(self, result: HostResult[Any]) -> dict[str, Any]:
        doc: dict[str, Any] = {"host": result.host.name, "address": result.host.address}
        doc |= {"state": result.state, "ok": result.ok}
        doc["error"] = error_json(result.error) if result.error else None
        doc["skipped"] = result.skipped or None
        doc |= {"attempts": result.attempts, "elapsed_s": round(result.elapsed, 4)}
        if result.ok:
            doc |= self.view.fields(result.value)
        return doc

    def _hosts(self, results: Sequence[HostResult[Any]]) -> list[dict[str, Any]]:
        return [self.host_json(r) for r in results]

    # -- tables -----------------------------------------------------------------------------

    def _table(self, results: Sequence[HostResult[Any]]) -> Table:
        if self.detail is not None and len(results) == 1 and results[0].ok:
            table = Table("field", "value", show_header=False)
            for name, value in self.detail(results[0].value):
                table.add_row(Text(name), Text(clean(value)))
            return table
        return self._wide(results) if self.wide else self._grouped(results)

    def _grouped(self, results: Sequence[HostResult[Any]]) -> Table:
        table = Table("hosts", "result")
        table.add_column("detail", no_wrap=True, overflow="ellipsis")  # one line per failure
        for r in results:
            if r.error is not None:
                name = Text(r.host.name)
                table.add_row(name, Text("failed", style="red"), Text(_cut(short_error(r.error))))
        skipped = [r for r in results if r.skipped]
        if skipped:
            names = _names([r.host.name for r in skipped])
            table.add_row(names, Text("not attempted", style="yellow"), Text(skipped[0].skipped))
        groups: dict[str, list[str]] = {}
        for r in results:
            if r.ok:
                groups.setdefault(self.view.outcome(r.value), []).append(r.host.name)
        for outcome, names_ in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            table.add_row(_names(names_), Text("ok", style="green"), Text(outcome))
        return table

    def _wide(self, results: Sequence[HostResult[Any]]) -> Table:
        view = self.view
        table = Table("host", "result", *view.columns)
        table.add_column("error", no_wrap=True, overflow="ellipsis")
        order = sorted(results, key=lambda r: ("failed", "skipped", "ok").index(r.state))
        for r in order:
            blanks = [Text("")] * len(view.columns)
            if r.error is not None:
                err = Text(short_error(r.error))
                table.add_row(Text(r.host.name), Text("failed", style="red"), *blanks, err)
            elif r.skipped:
                skip = Text(r.skipped)
                table.add_row(Text(r.host.name), Text("skipped", style="yellow"), *blanks, skip)
            else:
                for row in view.rows(r.value) or [[""] * len(view.columns)]:
                    cells = [Text(_cell(c)) for c in row]
                    table.add_row(Text(r.host.name), Text("ok", style="green"), *cells, Text(""))
        return table


def _names(names: Sequence[str]) -> Text:
    if len(names) == 1:
        return Text(names[0])
    shown = ", ".join(names[:_GROUP_NAMES]) + (", …" if len(names) > _GROUP_NAMES else "")
    return Text(f"{len(names)} hosts ({shown})")


def _cut(text: str) -> str:
    return text if len(text) <= _SHORT else text[: _SHORT - 1] + "…"


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else clean(str(value))
