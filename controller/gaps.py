"""Gap and duplicate detection on the event stream (``ioinctl watch --check-gaps``).

Each agent numbers its events gap-free per boot (``epoch``), across all hooks. Batches are cut
per hook, so sequence numbers arrive somewhat out of order; a number still missing ``grace``
seconds after a higher one arrived is declared lost. A number seen twice is a duplicate (QoS 1
redelivery after a reconnect is at-least-once).

A watch that starts mid-stream cannot know what was published before it subscribed: during a
warm-up of ``grace`` seconds per (host, epoch) it only records; if it saw sequence number 1 it
then checks from the start of the epoch, otherwise from the highest number seen in the warm-up.

A number more than ``MAX_JUMP`` beyond the stream's low watermark is not taken as the sign of
that many lost events but as a forged or corrupt one (seq 2^64-1 in a fresh epoch would otherwise
report 18446744073709551613 events missing): it is counted as implausible and skipped.

At most ``MAX_STREAMS`` (host, epoch) streams are tracked (a host can forge a new epoch per
batch); events of further streams are counted in ``untracked`` and not checked.

Memory per (host, epoch) is the numbers received out of order within the grace window, plus at
most ``MAX_RANGES`` remembered missing ranges (counts are always exact).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["MAX_JUMP", "MAX_RANGES", "MAX_STREAMS", "GapChecker", "SeqTracker"]

MAX_RANGES = 100
# An hour of an agent at 300,000 events/s: a larger jump is not a gap anyone could have caused.
MAX_JUMP = 2**30
MAX_STREAMS = 10_000  # (host, epoch) pairs: a fleet of 1,000 agents restarting 10 times each


@dataclass(slots=True)
class SeqTracker:
    """One (host, epoch) stream."""

    grace: float
    started: float
    anchored: bool = False
    next: int = 0  # every number below this is settled (received or declared missing)
    ahead: set[int] = field(default_factory=set)  # received, >= next
    hole_since: float | None = None
    warm: set[int] = field(default_factory=set)
    received: int = 0
    missing: int = 0
    duplicates: int = 0
    implausible: int = 0
    ranges: list[tuple[int, int]] = field(default_factory=list)

    def add(self, seq: int, now: float) -> bool:
        """Record ``seq``; False if it is a duplicate or implausible."""
        if not self.anchored:
            if seq in self.warm:
                self.duplicates += 1
                return False
            self.warm.add(seq)
            self.received += 1
            return True
        if seq >= self.next + MAX_JUMP:
            self.implausible += 1
            return False
        if seq < self.next or seq in self.ahead:
            self.duplicates += 1
            return False
        self.received += 1
        self.ahead.add(seq)
        self._advance(now)
        return True

    def tick(self, now: float) -> list[tuple[int, int]]:
        """Finish the warm-up, and declare holes older than ``grace`` missing; returns them."""
        if not self.anchored:
            if now - self.started < self.grace:
                return []
            self._anchor(now)
        found = []
        while self.ahead and self.hole_since is not None and now - self.hole_since >= self.grace:
            lo, hi = self.next, min(self.ahead) - 1
            found.append((lo, hi))
            self.missing += hi - lo + 1
            if len(self.ranges) < MAX_RANGES:
                self.ranges.append((lo, hi))
            self.next = hi + 1
            self.hole_since = None
            self._advance(now)
        return found

    def _anchor(self, now: float) -> None:
        self.anchored = True
        plausible = {s for s in self.warm if s < min(self.warm) + MAX_JUMP}
        self.implausible += len(self.warm) - len(plausible)
        self.warm = plausible
        if 1 in self.warm:
            self.next, self.ahead = 1, self.warm
        else:
            self.next = max(self.warm) + 1
        self.warm = set()
        self._advance(now)

    def _advance(self, now: float) -> None:
        while self.next in self.ahead:
            self.ahead.remove(self.next)
            self.next += 1
        if not self.ahead:
            self.hole_since = None
        elif self.hole_since is None:
            self.hole_since = now


class GapChecker:
    """Trackers for every (host, epoch) seen."""

    def __init__(self, grace: float = 5.0) -> None:
        self.grace = grace
        self.streams: dict[tuple[str, str], SeqTracker] = {}
        self.untracked = 0  # events of streams beyond MAX_STREAMS

    def add(self, host: str, epoch: str, seq: int, now: float) -> bool:
        tracker = self.streams.get((host, epoch))
        if tracker is None:
            if len(self.streams) >= MAX_STREAMS:
                self.untracked += 1
                return True  # not checked: neither a duplicate nor implausible
            tracker = self.streams[(host, epoch)] = SeqTracker(self.grace, now)
        return tracker.add(seq, now)

    def tick(self, now: float) -> list[tuple[str, str, int, int]]:
        """Newly missing ranges: (host, epoch, first, last)."""
        return [
            (host, epoch, lo, hi)
            for (host, epoch), t in self.streams.items()
            for lo, hi in t.tick(now)
        ]

    def unsettled(self) -> int:
        """Numbers still missing but younger than ``grace`` (not yet counted as lost)."""
        total = 0
        for t in self.streams.values():
            if t.anchored and t.ahead:
                total += max(t.ahead) - t.next + 1 - len(t.ahead)
        return total
