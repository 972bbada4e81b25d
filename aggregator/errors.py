"""The aggregator's exceptions: one root, carrying fields.

Tree::

    AggError
    ├── ConfigError(key)        a bad configuration value or file, naming the key
    ├── Junk(reason)            a payload that is not a batch we may count (counted, skipped)
    ├── StoreError(op)          the store failed or is unreachable (counted, retried)
    └── QueryError(token)       a query or filter the service refuses, naming the token

Foreign errors (sqlite3, psycopg, OSError) become :class:`StoreError` in ``aggregator.store`` and
nowhere else; the gRPC service maps :class:`QueryError` to INVALID_ARGUMENT in one place.
"""

from __future__ import annotations

__all__ = ["AggError", "ConfigError", "Junk", "QueryError", "StoreError"]


class AggError(Exception):
    """Root of every error the aggregator raises."""


class ConfigError(AggError):
    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class Junk(AggError):
    """A payload skipped: ``kind`` is its counter label (malformed, foreign-host, future, ...)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class StoreError(AggError):
    def __init__(self, op: str, reason: str) -> None:
        super().__init__(f"store {op}: {reason}")
        self.op = op
        self.reason = reason


class QueryError(AggError):
    def __init__(self, token: str, reason: str) -> None:
        super().__init__(f"'{token}': {reason}")
        self.token = token
        self.reason = reason
