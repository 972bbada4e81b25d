"""structlog set-up: one JSON object per line on stdout, which journald stores as it is.

The level lives in one mutable threshold checked by the first processor, so ``set_level`` (a
SIGHUP reload) takes effect for every logger at once, including loggers already bound and cached.
Writes to stdout block when its reader (journald) stalls; that blocks the event loop, and the
watchdog (:mod:`agent.supervisor`) then stops pinging — the restart is what we want there.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

__all__ = ["LEVELS", "set_level", "setup_logging"]

LEVELS = ("debug", "info", "warning", "error")
_NUMBERS = logging.getLevelNamesMapping() | {"WARN": logging.WARNING, "EXCEPTION": logging.ERROR}


class _Threshold:
    """Drops events below the current level (``structlog.DropEvent``)."""

    def __init__(self) -> None:
        self.level = logging.INFO

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
        if _NUMBERS.get(method.upper(), logging.INFO) < self.level:
            raise structlog.DropEvent
        return event


_threshold = _Threshold()


def set_level(level: str) -> None:
    """Change the level of every logger (``debug`` | ``info`` | ``warning`` | ``error``)."""
    if level not in LEVELS:
        raise ValueError(f"log level '{level}' is not one of {', '.join(LEVELS)}")
    _threshold.level = _NUMBERS[level.upper()]


def setup_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """JSON lines to ``stream`` (default: stdout) at ``level``."""
    set_level(level)
    structlog.configure(
        processors=[
            _threshold,
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=True,
    )
