"""The fan-out engine: one call per host, for 1,000+ hosts, with results as they arrive.

- **Concurrency** is bounded (``--concurrency``, default :data:`DEFAULT_CONCURRENCY`) and never
  above what the descriptor limit allows; the soft ``RLIMIT_NOFILE`` is first raised to the hard
  one (:func:`raise_fd_limit`), so a default ``ulimit -n`` of 1024 does not fail hosts.
- **Deadlines.** Each host has its own (``--timeout``) that bounds all it costs, retries
  included; ``--deadline`` bounds the whole command: hosts still waiting for a slot then are
  reported as not attempted, and calls in flight get only the time left.
- **Rollouts** (Ansible's ``serial``, Salt's ``--batch-size``): ``--batch N|N%`` runs one batch
  after the other; ``--max-fail N|N%`` stops once more hosts than that have failed, leaving the
  rest not attempted.
- **Streaming.** ``on_result`` sees every host's result the moment it is known (progress,
  ``-o jsonl``); the returned list keeps the inventory's order.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

from controller.client import About, Call, CallPolicy, HostResult, call_host
from controller.errors import UsageError
from controller.inventory import Host
from controller.security import Security

__all__ = [
    "DEFAULT_CONCURRENCY",
    "Rollout",
    "Share",
    "Targets",
    "fan_out",
    "fan_out_each",
    "raise_fd_limit",
]

T = TypeVar("T")

# Hosts called at once by default. bench/fleet.py at 1,000 agents (2 shared cores): 64 and 256
# take about the same wall time (the work is TLS handshakes and protobuf on both sides, CPU-bound),
# 1,024 is slower (every deadline starts at once, so late hosts time out) and uses more memory.
# 256 keeps a fan-out moving even when hundreds of hosts never answer and hold a slot each.
DEFAULT_CONCURRENCY = 256
# Descriptors per call in flight (its TCP socket, plus headroom for gRPC's own pipes and
# eventfds), and descriptors kept for everything else (stdio, the event loop, log files).
_FDS_PER_CALL = 2
_FDS_RESERVED = 64


@dataclass(frozen=True, slots=True)
class Share:
    """``N`` hosts or ``N%`` of them (``--batch``, ``--max-fail``)."""

    amount: int
    percent: bool = False

    @classmethod
    def parse(cls, flag: str, text: str) -> Share:
        body = text.strip().removesuffix("%")
        if not (body.isascii() and body.isdigit()):
            raise UsageError(f"{flag}: '{text}' is not N or N%")
        share = cls(int(body), text.strip().endswith("%"))
        if share.percent and share.amount > 100:
            raise UsageError(f"{flag}: '{text}' is over 100%")
        return share

    def of(self, total: int) -> int:
        """How many hosts of ``total`` (a percentage rounds down)."""
        return total * self.amount // 100 if self.percent else self.amount

    def __str__(self) -> str:
        return f"{self.amount}{'%' if self.percent else ''}"


@dataclass(frozen=True, slots=True)
class Rollout:
    """Batches and a failure budget; the default is one batch and no budget."""

    batch: Share | None = None
    max_fail: Share | None = None

    def batch_size(self, total: int) -> int:
        if self.batch is None:
            return max(total, 1)
        return max(self.batch.of(total), 1)  # 10% of 5 hosts is still one at a time

    def budget(self, total: int) -> int | None:
        return None if self.max_fail is None else self.max_fail.of(total)


@dataclass(frozen=True, slots=True)
class Targets:
    """Where a command goes and how: hosts, transport security, deadlines, concurrency, rollout."""

    hosts: Sequence[Host]
    security: Security
    timeout: float = 5.0
    deadline: float | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    rollout: Rollout = field(default_factory=Rollout)


def raise_fd_limit() -> int:
    """Raise the soft descriptor limit to the hard one; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass  # keep the soft limit; concurrency is sized from it below
    return soft


def concurrency_for(requested: int) -> int:
    """``requested``, lowered to what the descriptor limit allows (at least one)."""
    soft = raise_fd_limit()
    return max(1, min(requested, (soft - _FDS_RESERVED) // _FDS_PER_CALL))


async def fan_out(
    t: Targets,
    fn: Call[T],
    *,
    idempotent: bool = False,
    about: About = None,
    on_result: Callable[[HostResult[T]], None] | None = None,
) -> list[HostResult[T]]:
    """Run ``fn`` on every host (see the module docstring); results in the inventory's order."""
    return await fan_out_each(
        t, lambda _: fn, idempotent=idempotent, about=about, on_result=on_result
    )


async def fan_out_each(
    t: Targets,
    call_for: Callable[[Host], Call[T]],
    *,
    idempotent: bool = False,
    about: About = None,
    on_result: Callable[[HostResult[T]], None] | None = None,
) -> list[HostResult[T]]:
    """:func:`fan_out` with a call made for each host (``apply`` plans per host)."""
    run = _Run(t, call_for, CallPolicy(t.timeout, idempotent), about, on_result)
    return await run.all()


class _Run(Generic[T]):
    """One fan-out's shared state: slots, failures so far, the overall deadline."""

    def __init__(
        self,
        t: Targets,
        call_for: Callable[[Host], Call[T]],
        policy: CallPolicy,
        about: About,
        on_result: Callable[[HostResult[T]], None] | None,
    ) -> None:
        self.t, self.call_for, self.policy, self.about = t, call_for, policy, about
        self.on_result = on_result
        self.slots = asyncio.Semaphore(concurrency_for(t.concurrency))
        self.budget = t.rollout.budget(len(t.hosts))
        self.end = None if t.deadline is None else time.monotonic() + t.deadline
        self.failed = 0
        self.results: dict[int, HostResult[T]] = {}

    async def all(self) -> list[HostResult[T]]:
        size = self.t.rollout.batch_size(len(self.t.hosts))
        indexed = list(enumerate(self.t.hosts))
        for first in range(0, len(indexed), size):
            async with asyncio.TaskGroup() as tg:
                for i, host in indexed[first : first + size]:
                    tg.create_task(self._one(i, host))
        return [self.results[i] for i in range(len(indexed))]

    def _stop_reason(self) -> str:
        if self.budget is not None and self.failed > self.budget:
            limit = self.t.rollout.max_fail
            return f"not attempted: rollout stopped, {self.failed} failed (--max-fail {limit})"
        if self.end is not None and time.monotonic() >= self.end:
            return f"not attempted: the overall --deadline of {self.t.deadline:g} s passed"
        return ""

    async def _one(self, i: int, host: Host) -> None:
        async with self.slots:
            reason = self._stop_reason()
            if reason:
                self._done(i, HostResult(host, skipped=reason, attempts=0))
                return
            policy = self.policy
            if self.end is not None:  # only the time left: the command ends by its deadline
                left = max(self.end - time.monotonic(), 0.001)
                policy = replace(policy, timeout=min(policy.timeout, left))
            fn = self.call_for(host)
            self._done(i, await call_host(host, self.t.security, fn, policy, self.about))

    def _done(self, i: int, result: HostResult[T]) -> None:
        self.results[i] = result
        self.failed += result.error is not None
        if self.on_result is not None:
            self.on_result(result)
