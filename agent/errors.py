"""Errors raised by the agent.

One root, every subclass carries fields rather than only text::

    AgentError
    ├── ConfigError(problems)            bad configuration file or flag
    ├── BadRequest(field, reason)        a request that cannot be decoded or breaks a limit
    ├── HookError                        a hook that cannot be set
    │   ├── HookSyntaxError(token, text) a command the parser refuses; names the token
    │   ├── HookNotFound(hook_id)        no hook with that id
    │   ├── HookLimitError(limit)        the table holds max_hooks hooks already
    │   └── CapabilityError(capability, backend)
    ├── BackendError                     the hypervisor backend failed
    │   ├── KvmError(op, errno)          an ioctl on /dev/kvm failed
    │   ├── TraceError(path, errno)      tracefs could not be used
    │   └── NotFoundError(kind, key)     no VM / break with that id
    ├── PublishError                     the broker refused or timed out
    └── StateError(path, reason)         the hooks could not be saved in state_dir
        └── StateFull                    ... because the disk is full

The gRPC server maps these to status codes in one interceptor (``agent.rpc.errors``).
"""

from __future__ import annotations

import os

from agent.model import SHOWN_ID, printable

__all__ = [
    "AgentError",
    "BackendError",
    "BadRequest",
    "CapabilityError",
    "ConfigError",
    "HookError",
    "HookLimitError",
    "HookNotFound",
    "HookSyntaxError",
    "KvmError",
    "NotFoundError",
    "PublishError",
    "StateError",
    "StateFull",
    "TraceError",
]


class AgentError(Exception):
    """Root of every error the agent raises on purpose."""


class ConfigError(AgentError):
    """A configuration file or flag is wrong; ``problems`` lists every problem found."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class BadRequest(AgentError):
    """A request the agent cannot decode, or one over a limit; ``field`` names the part."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class HookError(AgentError):
    """A hook cannot be set, changed or found."""


class HookSyntaxError(HookError):
    """The hook language refused a command; ``token`` is the offending token (may be empty)."""

    def __init__(self, message: str, token: str = "") -> None:
        self.token = token
        self.message = message
        super().__init__(message)


class HookNotFound(HookError):
    def __init__(self, hook_id: str) -> None:
        self.hook_id = hook_id
        super().__init__(f"no hook with id '{printable(hook_id, SHOWN_ID)}'")


class HookLimitError(HookError):
    """The hook table is full: it holds ``limit`` hooks (config key ``max_hooks``)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"hook limit reached: the agent holds {limit} hooks (max_hooks); remove one first"
        )


class CapabilityError(HookError):
    """The hook asks for something the backend cannot do (``capability``)."""

    def __init__(self, capability: str, backend: str, field: str = "") -> None:
        self.capability = capability
        self.backend = backend
        self.field = field
        what = f" ({field})" if field else ""
        super().__init__(f"backend '{backend}' lacks capability '{capability}'{what}")


class BackendError(AgentError):
    """The hypervisor backend failed or refused an operation."""


class KvmError(BackendError):
    """An ioctl (or mmap) on /dev/kvm failed: ``op`` names it, ``errno`` says why."""

    def __init__(self, op: str, errno: int, detail: str = "") -> None:
        self.op = op
        self.errno = errno
        reason = os.strerror(errno) if errno else detail
        super().__init__(f"{op} failed: {reason}" + (f" ({detail})" if detail and errno else ""))


class TraceError(BackendError):
    """tracefs could not be used: ``path`` names the file, ``errno`` says why (0 if n/a)."""

    def __init__(self, path: str, errno: int = 0, detail: str = "") -> None:
        self.path = path
        self.errno = errno
        reason = detail or (os.strerror(errno) if errno else "failed")
        super().__init__(f"tracefs {path}: {reason}")


class NotFoundError(BackendError):
    """No object of ``kind`` (vm, break) with ``key``."""

    def __init__(self, kind: str, key: object) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"no {kind} '{printable(str(key), SHOWN_ID)}'")


class PublishError(AgentError):
    """The broker refused a publish or did not acknowledge it in time."""


class StateError(AgentError):
    """The hooks could not be written to ``path`` (``reason`` says why); nothing was changed."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot save hooks in {path}: {reason}; the change was not made")


class StateFull(StateError):
    """The disk under ``state_dir`` is full."""
