"""The audit trail: every mutating gRPC call, allowed or refused, as one record.

A record says who (certificate subject and role; ``-`` / ``admin (plain server)`` when gRPC runs
without TLS), what (method, hook id, canonical command), the result (gRPC status name and its
detail) and the request id the client saw. It goes to the log (structlog event ``audit``) and,
through ``publish`` (the agent's :meth:`~agent.core.Agent.audit`), to ``ioin/v1/<host>/audit``
as JSON with QoS 1. That publish rides the outbox's bounded control queue, whose overflow policy
(drop the oldest, counted in ``dropped_control``) applies; the log line is written whatever
happens to the publish.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from agent.rpc.roles import Done

__all__ = ["Audit", "audit_record"]

log = structlog.get_logger("ioind.audit")


def audit_record(host: str, done: Done) -> dict[str, Any]:
    """The JSON form of one finished mutating call."""
    who = done.caller
    return {
        "host": host,
        "ts": time.time_ns(),
        "subject": who.subject if who else "-",
        "role": (who.presented if who else "admin (plain server)"),
        "method": done.method,
        "hook_id": done.need.hook_id,
        "command": done.need.command,
        "result": done.code.name,
        "detail": done.detail,
        "request_id": done.request_id,
        "peer": done.peer,
    }


class Audit:
    """Records finished mutating calls (pass it as ``RoleInterceptor(audit=...)``)."""

    def __init__(
        self, host: str, publish: Callable[[Mapping[str, object]], None] | None = None
    ) -> None:
        self._host = host
        self._publish = publish
        self.records = 0

    def __call__(self, done: Done) -> None:
        record = audit_record(self._host, done)
        self.records += 1
        log.info("audit", **record)
        if self._publish is not None:
            self._publish(record)
