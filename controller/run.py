"""Running one fan-out command: targets → streamed results → output → exit code."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

from controller.client import About, Call, HostResult, exit_code
from controller.fanout import Targets, fan_out_each
from controller.inventory import Host
from controller.options import FleetOptions
from controller.render import Report, View

__all__ = ["execute", "gather"]

T = TypeVar("T")


def gather(
    t: Targets,
    call_for: Callable[[Host], Call[T]],
    report: Report,
    *,
    idempotent: bool = False,
    about: About = None,
) -> list[HostResult[T]]:
    """Fan ``call_for(host)`` out over ``t``, feeding ``report`` as results arrive, then
    finishing it."""
    start = time.monotonic()
    report.start(len(t.hosts))
    results = asyncio.run(
        fan_out_each(t, call_for, idempotent=idempotent, about=about, on_result=report.on_result)
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
    return exit_code(gather(t, lambda _: fn, report, idempotent=idempotent, about=about))
