"""One run of a compiled script: the machine state its closures read and write.

Limits (per run): ``budget`` steps (HyperDbg's 1,000,000 by default; a statement, a loop test
and a call are one step each), call depth :data:`MAX_DEPTH`, output :data:`MAX_OUTPUT` characters
(the rest is cut and the cut is marked). Exceeding the budget or the depth, or dividing by zero,
raises :class:`ScriptAbort`; the hit that ran it carries on without the script's effects on the
guest, and the caller counts the abort.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import NoReturn, Protocol

from agent.script.errors import ScriptAbort

__all__ = [
    "CLOCK_HANDLES",
    "MASK",
    "MAX_DEPTH",
    "MAX_OUTPUT",
    "STEP_BUDGET",
    "GuestMemory",
    "Machine",
    "RunResult",
    "clock_text",
    "signed",
]

MASK = (1 << 64) - 1
STEP_BUDGET = 1_000_000  # HyperDbg's limit per run
MAX_DEPTH = 64  # nested user-function calls
MAX_OUTPUT = 4096  # characters of printf output per run

# $time and $date: in HyperDbg, the address of a per-core text buffer ("HH:MM:SS.mmm",
# "YYYY-MM-DD", ScriptEngineGetTargetCoreTime / ...Date), only meaningful to printf's %s. Here a
# fixed nonzero number each ("time" and "date" in ASCII), and printf's %s of them prints the text.
CLOCK_HANDLES = {"time": 0x74696D65, "date": 0x64617465}


def clock_text(name: str, ns: int | None = None) -> str:
    """``$time`` (``HH:MM:SS.mmm``) or ``$date`` (``YYYY-MM-DD``) as HyperDbg prints them, in
    UTC, at ``ns`` (nanoseconds since the epoch; now by default)."""
    ns = time.time_ns() if ns is None else ns
    t = time.gmtime(ns // 1_000_000_000)
    if name == "date":
        return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
    return f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{ns // 1_000_000 % 1000:03d}"


def signed(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


class GuestMemory(Protocol):
    """Guest memory through the guest's page tables (the kvm backend provides one)."""

    def read(self, address: int, size: int) -> bytes: ...

    def write(self, address: int, data: bytes) -> None: ...


@dataclass(slots=True)
class RunResult:
    """What a run did: its value (a condition's), output, and the effects it asked for."""

    value: int = 0
    output: str = ""
    short_circuit: bool = False
    pause: bool = False
    events: list[tuple[str, int | str]] = field(default_factory=list)
    steps: int = 0


class Machine:
    """The state of one run; the compiled closures get it as their first argument."""

    __slots__ = (
        "budget",
        "depth",
        "globals",
        "memory",
        "out",
        "out_len",
        "pseudo",
        "regs",
        "result",
        "ret",
        "steps",
    )

    def __init__(
        self,
        regs: MutableMapping[str, int],
        pseudo: MutableMapping[str, int],
        globals_: MutableMapping[str, int],
        *,
        budget: int = STEP_BUDGET,
        memory: GuestMemory | None = None,
    ) -> None:
        self.regs = regs
        self.pseudo = pseudo
        self.globals = globals_
        self.budget = budget
        self.memory = memory
        self.steps = 0
        self.depth = 0
        self.ret = 0
        self.out: list[str] = []
        self.out_len = 0
        self.result = RunResult()

    def tick(self) -> None:
        self.steps += 1
        if self.steps > self.budget:
            raise ScriptAbort(f"step budget of {self.budget} exhausted", self.steps)

    def abort(self, reason: str) -> NoReturn:
        raise ScriptAbort(reason, self.steps)

    def write(self, text: str) -> None:
        room = MAX_OUTPUT - self.out_len
        if room <= 0:
            return
        if len(text) > room:
            text = text[:room] + "\n[output cut at 4096 characters]\n"
        self.out.append(text)
        self.out_len += len(text)

    def mem(self) -> GuestMemory:
        if self.memory is None:  # compile-time checks make this unreachable on a backend
            raise ScriptAbort("no guest memory on this run", self.steps)
        return self.memory

    def finish(self, value: int) -> RunResult:
        self.result.value = value
        self.result.output = "".join(self.out)
        self.result.steps = self.steps
        return self.result
