"""A hook's compiled ``condition { }`` and ``script { }``, as the backends run them.

One :class:`HookScript` per hook, built once when the hook is set (so errors come at SetHook)
and shared by every vCPU: it holds the hook's globals (kept across hits and vCPUs, as HyperDbg's
are) and counts aborted runs. A run never raises into a backend: an aborted condition is false
and an aborted script has no effect; both are counted, and :meth:`HookScript.abort_notice`
hands out at most one notice a second per hook (with the number of aborts it stands for), so a
script aborting on every hit cannot flood the ``notices`` topic.

Runs that write globals hold a per-hook lock, so ``.n = .n + 1`` from two vCPUs loses nothing
(HyperDbg leaves that race to its ``interlocked_*`` functions).

``event_enable`` / ``event_disable`` / ``event_clear`` of a run that finished are handed to
``post`` (the hook table's inbox, :mod:`agent.hooks.requests`): the agent's loop applies them
after the hit. A hook's number, for those calls and for ``$event_id``, is :func:`event_id`.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

import numpy as np

from agent.model import Capability
from agent.script.compiler import Program, compile_condition, compile_script
from agent.script.errors import ScriptAbort
from agent.script.nodes import Block
from agent.script.purity import calls
from agent.script.runtime import CLOCK_HANDLES, GuestMemory, RunResult
from agent.script.vector import Columns, compile_columns, reads

__all__ = [
    "HOOK_CALLS",
    "NOTICE_INTERVAL_S",
    "HookScript",
    "Post",
    "event_id",
    "hook_calls",
    "script_needs",
]

NOTICE_INTERVAL_S = 1.0
HOOK_CALLS = frozenset({"event_enable", "event_disable", "event_clear"})
_DIVISION = ScriptAbort("division by zero")  # the one way a pure condition aborts

Post = Callable[[str, str, int | str], None]  # (the asking hook's id, function name, target)


def event_id(hook_id: str) -> int:
    """A hook's number: the CRC-32 of its id (UTF-8), the same on every agent and restart.
    HyperDbg numbers events in creation order; ours must survive restarts and re-sets."""
    return zlib.crc32(hook_id.encode())


def hook_calls(condition: str, script: str) -> list[str]:
    """The calls that change other hooks (``event_clear()``, ...), each as ``kind: name()``
    (compiles the blocks: ``ScriptError`` if they are wrong)."""
    hs = HookScript("", condition, script)
    return [
        f"{program.kind}: {call.name}()"
        for program in (hs.condition, hs.script)
        if program is not None
        for call in calls(program.tree)
        if call.name in HOOK_CALLS
    ]


def script_needs(condition: str, script: str) -> list[tuple[Capability, str]]:
    """What a hook's blocks need from the backend, each with the token that needs it: the
    ``script`` capability for having blocks at all, then what the blocks do (compiles them:
    ``ScriptError`` if they are wrong)."""
    if not condition and not script:
        return []
    hs = HookScript("", condition, script)
    out = [(Capability.SCRIPT, "condition" if condition else "script")]
    for program in (hs.condition, hs.script):
        if program is not None:
            out += [(cap, f"{program.kind}: {where}") for cap, where in program.needs.items()]
    return out


class HookScript:
    """The compiled blocks of one hook (either may be absent), its globals and abort count."""

    def __init__(
        self, hook_id: str, condition: str = "", script: str = "", *, post: Post | None = None
    ) -> None:
        self.hook_id = hook_id
        self.event_id = event_id(hook_id)
        self._post = post
        self.condition: Program | None = compile_condition(condition) if condition else None
        self.script: Program | None = compile_script(script) if script else None
        pure = self.condition is not None and self.condition.pure
        self.columns: Callable[[Columns, int], tuple[Any, int]] | None = None
        self.reads: frozenset[str] = frozenset()  # the columns the pure condition reads
        if pure and self.condition is not None and not isinstance(self.condition.tree, Block):
            self.columns = compile_columns(self.condition.tree)
            self.reads = reads(self.condition.tree)
        # pseudo-registers that are one number for every hit of this hook
        self.constants = {"event_id": self.event_id} | CLOCK_HANDLES
        self.globals: dict[str, int] = {}
        self.aborts = 0
        self._unreported = 0
        self._last_reason = ""
        self._next_notice = 0.0
        # aborts are counted on vCPU or reader threads, and reported on the loop
        self._counting = threading.Lock()
        self._lock = threading.Lock()
        self._locked = bool(self.script and self.script.globals)

    @property
    def needs(self) -> dict[Capability, str]:
        needs = dict(self.script.needs) if self.script else {}
        if self.condition:
            needs = dict(self.condition.needs) | needs
        return needs

    @property
    def columnar(self) -> bool:
        """Only a pure condition: it can filter whole blocks of events (:meth:`mask`)."""
        return self.columns is not None and self.script is None

    def check(self, capabilities: Iterable[str], backend: str) -> None:
        """Refuse (``CapabilityError``, naming the capability and token) what the backend lacks."""
        for program in (self.condition, self.script):
            if program is not None:
                program.check(capabilities, backend)

    def mask(self, cols: Columns, n: int) -> Any:
        """The condition over ``n`` events at once (a numpy bool array); needs :attr:`columns`.
        Rows that divide by zero are false and counted as aborts, as :meth:`gate` counts them."""
        assert self.columns is not None
        constant = {f"${k}": v for k, v in self.constants.items() if f"${k}" in self.reads}
        if constant:
            cols = dict(cols) | {k: np.full(n, v, dtype=np.uint64) for k, v in constant.items()}
        mask, aborted = self.columns(cols, n)
        if aborted:
            self._aborted(_DIVISION, aborted)
        return mask

    def gate(
        self,
        regs: MutableMapping[str, int],
        pseudo: MutableMapping[str, int],
        memory: GuestMemory | None = None,
    ) -> bool:
        """The condition for one hit (True without one); an abort is counted and is False."""
        if self.condition is None:
            return True
        pseudo["event_id"] = self.event_id
        try:
            result = self.condition.run(regs, pseudo, self.globals, memory=memory)
        except ScriptAbort as e:
            self._aborted(e)
            return False
        if result.events:
            self._ask(result)
        return bool(result.value)

    def run(
        self,
        regs: MutableMapping[str, int],
        pseudo: MutableMapping[str, int],
        memory: GuestMemory | None = None,
    ) -> RunResult | None:
        """Run the script once on ``regs`` (changed in place); None without one or on abort.

        On abort the registers and globals are restored: a half-run script changes nothing
        (guest memory it already wrote stays written)."""
        if self.script is None:
            return None
        pseudo["event_id"] = self.event_id
        if not self._locked:
            return self._run(self.script, regs, pseudo, memory)
        with self._lock:
            saved = dict(self.globals)
            result = self._run(self.script, regs, pseudo, memory)
            if result is None:
                self.globals.clear()
                self.globals.update(saved)
            return result

    def _run(
        self,
        script: Program,
        regs: MutableMapping[str, int],
        pseudo: MutableMapping[str, int],
        memory: GuestMemory | None,
    ) -> RunResult | None:
        before = dict(regs)
        try:
            result = script.run(regs, pseudo, self.globals, memory=memory)
        except ScriptAbort as e:
            regs.clear()
            regs.update(before)
            self._aborted(e)
            return None
        if result.events:
            self._ask(result)
        return result

    def _ask(self, result: RunResult) -> None:
        """Hand the run's hook calls to the agent (nowhere without ``post``: eval, tests)."""
        if self._post is not None:
            for name, target in result.events:
                self._post(self.hook_id, name, target)

    def _aborted(self, e: ScriptAbort, n: int = 1) -> None:
        with self._counting:
            self.aborts += n
            self._unreported += n
            self._last_reason = e.reason

    def abort_notice(self) -> dict[str, object] | None:
        """Fields of a ``script-abort`` notice if aborts are unreported and one is due."""
        now = time.monotonic()
        if not self._unreported or now < self._next_notice:
            return None
        with self._counting:
            fields: dict[str, object] = {
                "hook_id": self.hook_id,
                "aborts": self._unreported,
                "total": self.aborts,
                "reason": self._last_reason,
            }
            self._unreported = 0
        self._next_notice = now + NOTICE_INTERVAL_S
        return fields
