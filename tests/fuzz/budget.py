"""How long a fuzz target runs: a short fixed budget in ``make test``, minutes in ``make fuzz``.

``make test``: each target runs ``SHORT_EXAMPLES`` examples from a fixed seed (hypothesis'
``derandomize``), a few seconds, the same inputs every run. ``make fuzz`` sets
``IOIN_FUZZ_SECONDS``: each target then runs round after round, each from a new seed, until
that many seconds have passed. Either way the process's RSS may not grow by more than
``RSS_GROWTH_MB`` over a target's run (a leak per input would show as growth); in ``make fuzz``
it is measured from the end of the first round, so that hypothesis' own bookkeeping of one round
(freed when the round ends) and the first imports do not count.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, seed, settings

__all__ = ["RSS_GROWTH_MB", "rss_mb", "run"]

SHORT_EXAMPLES = 400
LONG_ROUND = 500  # examples per seed in make fuzz
RSS_GROWTH_MB = 64

_COMMON: dict[str, Any] = {
    "deadline": None,
    "database": None,  # no example database: make test stays reproducible from its seed
    "suppress_health_check": list(HealthCheck),
    "print_blob": True,  # a failure prints the blob that reproduces it
}


def rss_mb() -> float:
    """This process's resident set size now, in MB (from /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(target: Callable[..., None], examples: int = SHORT_EXAMPLES) -> int:
    """Run a ``@given`` target for the budget; returns the rounds run. Asserts RSS stays bounded."""
    seconds = float(os.environ.get("IOIN_FUZZ_SECONDS", "0"))
    start_rss = rss_mb()
    if seconds <= 0:
        settings(max_examples=examples, derandomize=True, **_COMMON)(target)()
        rounds = 1
    else:
        end, rounds = time.monotonic() + seconds, 0
        configured = settings(max_examples=LONG_ROUND, **_COMMON)(target)
        while rounds == 0 or time.monotonic() < end:
            seed(rounds)(configured)()
            rounds += 1
            start_rss = rss_mb() if rounds == 1 else start_rss
    growth = rss_mb() - start_rss
    assert growth < RSS_GROWTH_MB, f"RSS grew {growth:.1f} MB over the fuzz run"
    return rounds
