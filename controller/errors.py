"""Errors raised by the controller.

One root; every subclass carries fields, not only text, and an ``exit_code`` that
:func:`controller.cli.main` turns into the process exit status (the one place that does)::

    ControllerError(message)                     exit 1 unless said otherwise
    ├── UsageError(message)                      a flag or combination of flags is wrong
    ├── InventoryError(path, key, problem)       the inventory (file or --hosts) is wrong
    ├── InvalidHook(message, token, exit_code)   the hook language refused a command
    ├── InvalidScript(message, token)            ``ioinctl eval``: refused or aborted script (2)
    ├── AgentUnreachable(host, address, reason)  no answer from an agent (refused, TLS, deadline)
    ├── RemoteError(host, code, details)         the agent answered with a gRPC error status
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
    "RemoteError",
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


class AgentUnreachable(ControllerError):
    """The agent ``host`` at ``address`` could not be reached; ``reason`` says why."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        self.host = host
        self.address = address
        self.reason = reason
        where = host if host == address else f"{host} ({address})"
        super().__init__(f"{where}: unreachable: {reason}")


class RemoteError(ControllerError):
    """The agent ``host`` refused the call: ``code`` is the gRPC status name, ``details`` why."""

    def __init__(self, host: str, code: str, details: str) -> None:
        self.host = host
        self.code = code
        self.details = details
        super().__init__(f"{host}: {code}: {details}")


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
