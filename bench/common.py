"""Shared by the benchmarks: result rows, printing, and the ``--json`` protocol of bench/run.py.

Every benchmark measures its baseline in the same run and reports ratios (machines here are
noisy: a single absolute time means little). A row: benchmark, case, value, unit, ratio to the
baseline, target (a ratio or a bound, as text) and whether the target was met.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import asdict, dataclass

__all__ = ["Row", "emit"]


@dataclass(frozen=True)
class Row:
    bench: str
    case: str
    value: float
    unit: str
    ratio: float | None = None  # value / baseline (same run)
    baseline: str = ""
    target: str = ""
    met: bool | None = None


def emit(rows: list[Row]) -> None:
    """Print ``rows`` as JSON (with ``--json``, for bench/run.py) or as a table."""
    if "--json" in sys.argv:
        print(json.dumps([asdict(r) for r in rows]))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("bench", "case", "value", "ratio", "baseline", "target", "met")
    for r in rows:
        ratio = "" if r.ratio is None else f"{r.ratio:.3f}"
        met = "" if r.met is None else ("yes" if r.met else "NO")
        table.add_row(r.bench, r.case, f"{r.value:,.1f} {r.unit}", ratio, r.baseline, r.target, met)
    # a wide table also when piped (make bench > file): rows must not wrap into noise
    Console(width=max(170, shutil.get_terminal_size().columns)).print(table)
