"""Progress on stderr while a fan-out runs: ``push: 740/1000 done, 737 ok, 3 failed, 260 pending``.

One line rewritten in place (carriage return), at most :data:`_EVERY_S` apart so a thousand
results arriving together cost a handful of writes; only used when stderr is a terminal.
"""

from __future__ import annotations

import sys
import time
from collections import Counter

__all__ = ["Progress"]

_EVERY_S = 0.1


class Progress:
    """Counts results by state and redraws one stderr line now and then."""

    def __init__(self, command: str, total: int) -> None:
        self.command = command
        self.total = total
        self.states: Counter[str] = Counter()
        self._width = 0
        self._draw()  # "0/N done": something shows before the first host answers
        self._drawn = time.monotonic()

    def update(self, state: str) -> None:
        self.states[state] += 1
        now = time.monotonic()
        if now - self._drawn >= _EVERY_S:
            self._draw()
            self._drawn = now

    def line(self) -> str:
        done = sum(self.states.values())
        ok, failed, skipped = (self.states[s] for s in ("ok", "failed", "skipped"))
        text = f"{self.command}: {done}/{self.total} done, {ok} ok, {failed} failed"
        text += f", {skipped} not attempted" if skipped else ""
        return f"{text}, {self.total - done} pending"

    def close(self) -> None:
        """Erase the line (the summary line follows on its own)."""
        sys.stderr.write("\r" + " " * self._width + "\r")
        sys.stderr.flush()

    def _draw(self) -> None:
        text = self.line()
        self._width = max(self._width, len(text))
        sys.stderr.write("\r" + text.ljust(self._width))
        sys.stderr.flush()
