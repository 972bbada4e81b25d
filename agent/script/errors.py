"""Errors of the script language, under the agent's one root (:mod:`agent.errors`)::

    AgentError
    ├── HookError
    │   └── HookSyntaxError(message, token)
    │       └── ScriptError(message, token, line, col)   refused when compiled (at SetHook)
    └── ScriptAbort(reason, steps, output)                 a run stopped (budget, division by zero)

A :class:`ScriptError` is a ``HookSyntaxError``, so the gRPC interceptor already maps it to
INVALID_ARGUMENT and the controller to ``InvalidHook``; capability refusals use the agent's
``CapabilityError`` unchanged. A :class:`ScriptAbort` never leaves a hit: the runner counts it.
"""

from __future__ import annotations

from agent.errors import AgentError, HookSyntaxError

__all__ = ["ScriptAbort", "ScriptError"]


class ScriptError(HookSyntaxError):
    """A script the compiler refuses; ``token`` is the offending token, at ``line``:``col``."""

    def __init__(self, message: str, token: str = "", line: int = 0, col: int = 0) -> None:
        self.line = line
        self.col = col
        where = f" at line {line}, column {col}" if line else ""
        shown = f" near '{token}'" if token and token not in message else ""
        super().__init__(f"{message}{shown}{where}", token)


class ScriptAbort(AgentError):
    """A run stopped before its end: ``reason`` says why, ``steps`` how far it got, ``output``
    what it printed before (``ioinctl eval`` shows it, as HyperDbg prints as it goes)."""

    def __init__(self, reason: str, steps: int = 0, output: str = "") -> None:
        self.reason = reason
        self.steps = steps
        self.output = output
        super().__init__(f"script aborted: {reason} (after {steps} steps)")
