"""Errors raised by the controller.

One root; every subclass carries fields, not only text, and an ``exit_code`` that
:func:`controller.cli.main` turns into the process exit status (the one place that does)::

    ControllerError(message)                     exit 1 unless said otherwise
    ├── UsageError(message)                      a flag or combination of flags is wrong
    ├── InventoryError(path, key, problem)       the inventory (file or --hosts) is wrong
    ├── SelectorError(selector, token, pos, ...) a label selector (-l) does not parse
    ├── PolicyError(path, policy, key, problem)  an `apply` / `diff` policy file is refused
    ├── InvalidHook(message, token, exit_code)   the hook language refused a command
    ├── InvalidScript(message, token)            ``ioinctl eval``: refused or aborted script (2)
    ├── AgentUnreachable(host, address, reason, kind)  no answer (kind: refused, timeout, tls, ...)
    ├── RemoteError(host, code, details)         the agent answered with a gRPC error status
    ├── PlanConflict(hook, policy, problem)      `apply` cannot own a hook on an agent
    ├── BrokerError(address, reason)             the MQTT broker refused us or went away
    └── PkiError(what, problem)                  ``ioinctl pki`` cannot do it (names the file)

``grpc.aio.AioRpcError`` becomes ``AgentUnreachable`` / ``RemoteError`` in exactly one place,
:func:`controller.client.translate`.
"""

from __future__ import annotations

__all__ = [
    "AgentUnreachable",
    "BrokerError",
    "ControllerError",
    "InvalidHook",
    "InvalidScript",
    "InventoryError",
    "PkiError",
    "PlanConflict",
    "PolicyError",
    "RemoteError",
    "SelectorError",
    "UsageError",
]


class ControllerError(Exception):
    """Root of every error the controller raises on purpose; ``str()`` is one clear line."""

    exit_code: int = 1


class UsageError(ControllerError):
    """The command line is wrong in a way the argument parser cannot see (e.g. no TLS chosen)."""


class InventoryError(ControllerError):
    """The inventory is wrong: ``path`` is the file (or ``--hosts``), ``key`` the entry."""

    def __init__(self, path: str, key: str, problem: str) -> None:
        self.path = path
        self.key = key
        self.problem = problem
        where = f"{path}: {key}" if key else path
        super().__init__(f"{where}: {problem}")


class InvalidHook(ControllerError):
    """The hook language refused ``command``; ``token`` names the offending token."""

    def __init__(self, message: str, token: str = "", *, exit_code: int = 1) -> None:
        self.message = message
        self.token = token
        self.exit_code = exit_code
        super().__init__(f"invalid hook: {message}")


class InvalidScript(ControllerError):
    """``ioinctl eval`` refused the script (syntax, name, arity, capability) or its run
    aborted; ``token`` names the offending token where there is one. Exit 2."""

    exit_code = 2

    def __init__(self, message: str, token: str = "") -> None:
        self.message = message
        self.token = token
        super().__init__(message)


class SelectorError(ControllerError):
    """The label selector ``selector`` is refused at ``token`` (offset ``pos``)."""

    def __init__(self, selector: str, token: str, pos: int, problem: str) -> None:
        self.selector = selector
        self.token = token
        self.pos = pos
        self.problem = problem
        at = f"'{token}' at {pos}" if token else f"end (at {pos})"
        super().__init__(f"selector '{selector}': {at}: {problem}")


class PolicyError(ControllerError):
    """The policy file ``path`` is refused: ``policy`` names the [[policy]], ``key`` the entry."""

    def __init__(self, path: str, policy: str, key: str, problem: str) -> None:
        self.path = path
        self.policy = policy
        self.key = key
        self.problem = problem
        where = ": ".join(p for p in (path, f"policy '{policy}'" if policy else "", key) if p)
        super().__init__(f"{where}: {problem}")


class AgentUnreachable(ControllerError):
    """The agent ``host`` at ``address`` could not be reached; ``reason`` says why.

    ``kind`` is one of ``refused`` (nothing listens), ``timeout`` (no answer within the deadline),
    ``tls`` (the handshake failed: certificate, CA or name) or ``unreachable`` (anything else).
    """

    def __init__(self, host: str, address: str, reason: str, kind: str = "unreachable") -> None:
        self.host = host
        self.address = address
        self.reason = reason
        self.kind = kind
        where = host if host == address else f"{host} ({address})"
        super().__init__(f"{where}: unreachable: {reason}")


class RemoteError(ControllerError):
    """The agent ``host`` refused the call: ``code`` is the gRPC status name, ``details`` why."""

    def __init__(self, host: str, code: str, details: str) -> None:
        self.host = host
        self.code = code
        self.details = details
        super().__init__(f"{host}: {code}: {details}")


class PlanConflict(ControllerError):
    """``apply`` would set hook ``hook`` for ``policy`` on an agent but must not: ``problem``."""

    def __init__(self, hook: str, policy: str, problem: str) -> None:
        self.hook = hook
        self.policy = policy
        self.problem = problem
        super().__init__(f"hook '{hook}' of policy '{policy}': {problem}")


class BrokerError(ControllerError):
    """The MQTT broker at ``address`` could not be used (``ioinctl watch``); ``reason`` says why."""

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"broker {address}: {reason}")


class PkiError(ControllerError):
    """``ioinctl pki`` refused: ``what`` names the file, name or flag, ``problem`` says why."""

    def __init__(self, what: str, problem: str) -> None:
        self.what = what
        self.problem = problem
        super().__init__(f"{what}: {problem}")
