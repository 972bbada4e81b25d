"""Notices: what a backend or the pipeline tells the agent besides events (a leaf module).

A :class:`Notice` is a typed kind plus its fields. The agent routes it by :attr:`Notice.route`:

- :attr:`Route.CONSOLE` (kind ``console``): guest serial output, fields ``vm`` (id), ``vm_name``,
  ``text``, ``device`` — published on ``ioin/v1/<host>/console/<vm_name>`` (QoS 0);
- :attr:`Route.BREAKS` (kind ``break``): a vCPU paused by a break hook, fields ``break_id``,
  ``hook_id``, ``vm``, ``vm_name``, ``vcpu``, ``port``, ``dir``, ``timeout_s`` — on ``.../breaks``;
- :attr:`Route.AUDIT` (kind ``audit``): a mutating gRPC call (see :mod:`agent.audit`) — on
  ``.../audit``;
- :attr:`Route.NOTICES` (every other kind): on ``ioin/v1/<host>/notices`` with ``kind`` and the
  fields.

Kinds are a ``StrEnum``: ``str(kind)`` is the wire spelling (``"vm-fault"``), so JSON bodies keep
the strings subscribers already read.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum, StrEnum
from typing import NamedTuple

__all__ = ["Notice", "NoticeKind", "Route"]


class NoticeKind(StrEnum):
    CONSOLE = "console"  # guest serial output (kvm)
    BREAK = "break"  # a vCPU paused by a break hook (kvm, sim)
    BREAK_TIMEOUT = "break-timeout"  # a paused vCPU resumed on its own (kvm, sim)
    VM_FAULT = "vm-fault"  # a guest fault and the action taken (kvm)
    VM_HALTED = "vm-halted"  # HLT with interrupts off (kvm)
    VM_STOPPED = "vm-stopped"  # a hooked VM process went away (kvm-trace)
    NOT_A_VM = "not-a-vm"  # a hook's pid is no KVM VM (kvm-trace)
    LOST = "lost"  # events the kernel lost (kvm-trace)
    BACKEND_ERROR = "backend-error"  # a backend could not do its work (kvm, kvm-trace)
    SUPPRESSED = "suppressed"  # events held back by a hook's rate limit (pipeline)
    DROPS = "drops"  # events dropped at a bounded stage (agent)
    SCRIPT_ABORT = "script-abort"  # a hook's script runs aborted (budget, division by zero)
    SCRIPT_HOOK = "script-hook"  # a script's event_enable / _disable / _clear, and its outcome
    AUDIT = "audit"  # a mutating gRPC call, allowed or refused (agent.audit)


class Route(Enum):
    """Which topic a notice goes to."""

    CONSOLE = "console"
    BREAKS = "breaks"
    NOTICES = "notices"
    AUDIT = "audit"


_ROUTES = {
    NoticeKind.CONSOLE: Route.CONSOLE,
    NoticeKind.BREAK: Route.BREAKS,
    NoticeKind.AUDIT: Route.AUDIT,
}


class Notice(NamedTuple):
    """One notice: its kind and fields (JSON-serialisable values); unpacks as
    ``kind, fields``."""

    kind: NoticeKind
    fields: Mapping[str, object]

    @property
    def route(self) -> Route:
        return _ROUTES.get(self.kind, Route.NOTICES)
