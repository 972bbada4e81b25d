"""Running one fan-out command: targets → streamed results → output → exit code."""

from __future__ import annotations

import asyncio
import time
from typing import TypeVar

from controller.client import About, Call, HostResult, exit_code
from controller.fanout import Targets, fan_out
from controller.options import FleetOptions
from controller.render import Report, View

__all__ = ["execute", "gather"]

T = TypeVar("T")


def gather(
    t: Targets,
    fn: Call[T],
    report: Report,
    *,
    idempotent: bool = False,
    about: About = None,
) -> list[HostResult[T]]:
    """Fan ``fn`` out over ``t``, feeding ``report`` as results arrive, then finishing it."""
    start = time.monotonic()
    report.start(len(t.hosts))
    results = asyncio.run(
        fan_out(t, fn, idempotent=idempotent, about=about, on_result=report.on_result)
    )
    report.finish(results, time.monotonic() - start)
    return results


def execute(
    command: str,
    fleet: FleetOptions,
    fn: Call[T],
    view: View,
    *,
    idempotent: bool = False,
    about: About = None,
) -> int:
    """Resolve the targets, run ``fn`` on them, show the results, return the exit code."""
    t = fleet.targets()
    report = Report(command, view, fleet.output, wide=fleet.wide)
    return exit_code(gather(t, fn, report, idempotent=idempotent, about=about))
