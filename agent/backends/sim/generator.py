"""The deterministic part of the ``sim`` backend: the same accesses for the same seed."""

from __future__ import annotations

import itertools
import random
from array import array
from dataclasses import dataclass

from agent.config import SimConfig
from agent.model import Direction

__all__ = ["Access", "AccessGenerator", "tick_of"]

TICK_S = 0.01  # generation granularity: rate * 10 ms accesses per tick (at rates >= 1,600/s)
IDLE_TICK_S = 1.0  # the longest tick: at low rates (and rate 0) an idle agent sleeps this long
LOW_RATE_ACCESSES = 16  # accesses per tick below 1,600/s (the tick grows instead of shrinking n)


def tick_of(rate: float) -> float:
    """10 ms ticks from 1,600 accesses/s up; below, ticks of about 16 accesses, up to a second:
    a quiet simulated guest costs a wake-up a second, not a hundred (bench/bench_idle.py)."""
    if rate <= 0:
        return IDLE_TICK_S
    return min(max(TICK_S, LOW_RATE_ACCESSES / rate), IDLE_TICK_S)


@dataclass(frozen=True, slots=True)
class Access:
    """One simulated port access."""

    dir: Direction
    port: int
    vm: int
    core: int
    value: int


class AccessGenerator:
    """The deterministic part: the next n accesses for the seed, generated in bulk.

    Per access: a port drawn by weight, and one 64-bit random word holding the rest — value
    (bits 0-7), core (8-23), VM (24-39) and direction (40-55, OUT below ``out_fraction``).
    """

    def __init__(self, config: SimConfig) -> None:
        self._rng = random.Random(config.seed)
        self._ports = list(config.ports)
        self._cum = list(itertools.accumulate(config.ports.values()))
        self.vms = config.vms
        self.cores = config.cores
        self.out_below = int(config.out_fraction * 0x10000)

    def columns(self, n: int) -> tuple[list[int], array[int]]:
        """(ports, words) for the next ``n`` accesses."""
        ports = self._rng.choices(self._ports, cum_weights=self._cum, k=n)
        words = array("Q", self._rng.randbytes(8 * n))
        return ports, words

    def take(self, n: int) -> list[Access]:
        """The next ``n`` accesses as records (tests; the backend uses :meth:`columns`)."""
        ports, words = self.columns(n)
        return [self.access(port, w) for port, w in zip(ports, words, strict=True)]

    def access(self, port: int, w: int) -> Access:
        out = (w >> 40) & 0xFFFF < self.out_below
        return Access(
            Direction.OUT if out else Direction.IN,
            port,
            1 + ((w >> 24) & 0xFFFF) % self.vms,
            ((w >> 8) & 0xFFFF) % self.cores,
            w & 0xFF,
        )
