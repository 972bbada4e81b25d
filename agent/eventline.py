"""The one human-readable form of an event: ``ioind local`` and ``ioinctl watch`` both print it.

It reads an event's JSON object (:func:`agent.events.to_json`, the keys of
:data:`agent.events.JSON_KEYS`), which is what ``watch`` decodes from the bus and what ``local``
makes of each record, so the two tools print the same line for the same event::

    12:00:01.000042 web-01 #17 in-3f8-785de70e IN  port 0x03f8 size 1 value 0x41 vm 3 (db) vcpu 0
    post count 4 rep string data [0x41, 0x42, 0x43, 0x44] rip 0x1004 set 0x7 skipped break b9
    output "hits 2\n"

(one line; wrapped here). The stage shows only when it is not ``pre``, the default.

Times are UTC (a fleet spans time zones). Optional keys may be missing or ``None`` (a consumer's
defaults); the required ones are ``ts``, ``host``, ``seq``, ``hook_id``, ``dir`` and ``port``.
Text from the event (host, hook id, VM name, stage, break id) goes through
:func:`agent.model.printable`: control characters escaped, length bounded, so a hostile
publisher cannot drive the operator's terminal. Part of the public contract: imports only
``agent.model`` (itself a leaf).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from agent.model import printable

__all__ = ["DATA_SHOWN", "event_line"]

DATA_SHOWN = 8  # elements of a string access's data printed (the JSON form has them all)
_TEXT_SHOWN = 256  # characters of any one text field printed


def event_line(ev: Mapping[str, Any]) -> str:
    """One line: time, host, seq, hook, direction, port, size, value, VM/vCPU, stage, actions."""
    when = datetime.fromtimestamp(ev["ts"] / 1e9, UTC).strftime("%H:%M:%S.%f")
    arrow = "IN " if ev["dir"] == "in" else "OUT"
    name = printable(str(ev.get("vm_name") or ""), _TEXT_SHOWN)
    vm = f"vm {ev.get('vm') or 0}" + (f" ({name})" if name else "")
    host, hook = printable(str(ev["host"]), _TEXT_SHOWN), printable(str(ev["hook_id"]), _TEXT_SHOWN)
    parts = [
        f"{when} {host} #{ev['seq']} {hook} {arrow} port {ev['port']:#06x}",
        f"size {ev.get('size') or 1} value {ev.get('value') or 0:#x}",
        f"{vm} vcpu {ev.get('vcpu') or 0}",
    ]
    if ev.get("stage") not in (None, "pre"):
        parts.append(printable(str(ev["stage"]), _TEXT_SHOWN))  # post: the access was emulated
    parts += _string_part(ev)
    if ev.get("rip") is not None:
        parts.append(f"rip {ev['rip']:#x}")
    if ev.get("value_set") is not None:
        parts.append(f"set {ev['value_set']:#x}")
    if ev.get("skipped"):
        parts.append("skipped")
    if ev.get("break_id"):
        parts.append(f"break {printable(str(ev['break_id']), _TEXT_SHOWN)}")
    if ev.get("output"):  # what the hook's script printed, quoted: the line stays one line
        parts.append(f"output {json.dumps(ev['output'])}")
    return " ".join(parts)


def _string_part(ev: Mapping[str, Any]) -> list[str]:
    """``count N [rep] [string data [...]]`` for repeated or string accesses, else nothing."""
    count = ev.get("count", 1)
    if count == 1 and not ev.get("rep") and not ev.get("string"):
        return []
    words = [f"count {count}"] + (["rep"] if ev.get("rep") else [])
    if ev.get("string"):
        data = list(ev.get("data") or [])
        more = ", ..." if len(data) > DATA_SHOWN else ""
        shown = ", ".join(f"{v:#x}" for v in data[:DATA_SHOWN])
        words.append(f"string data [{shown}{more}]")
    return [" ".join(words)]
