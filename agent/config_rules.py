"""Range checks on the agent's configuration: every number and address has a stated range.

``agent.config`` applies these after its own checks (choices, TLS), so ``ioind check-config``
reports every problem of a file at once; each names its key, the range and the value found,
e.g. ``mqtt.keepalive: out of range 1..65535, got -5``. The ranges come from the protocols
where there is one (MQTT 5 keep alive is a two-byte integer and the session expiry interval a
four-byte one, OASIS MQTT 5.0 sections 3.1.2.10 and 3.3.2.3.2) and otherwise from what the
agent can honour (a timeout of 0 never connects).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_HOOKS_CEILING", "range_problems"]

MAX_HOOKS_CEILING = 1_000_000
DAY = 86_400.0


def _range(low: float, high: float) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        ok = isinstance(value, int | float) and math.isfinite(value) and low <= value <= high
        return None if ok else f"out of range {low}..{high}, got {value!r}"

    return check


def _address(value: object) -> str | None:
    """``HOST:PORT`` with a port in 0..65535 (0: any free port); empty where allowed."""
    text = str(value)
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 0xFFFF:
        return f"expected HOST:PORT with a port in 0..65535, got {text!r}"
    return None


def _text(value: object) -> str | None:
    return None if str(value).strip() else "must not be empty"


# (key, the value's getter on an AgentConfig, the check). Typed on Any: agent.config imports
# this module, so it cannot import agent.config back (the import graph has no cycles).
Rule = tuple[str, Callable[[Any], object], Callable[[object], str | None]]

RULES: list[Rule] = [
    ("state_dir", lambda c: c.state_dir, _text),
    ("limits.max_hooks", lambda c: c.limits.max_hooks, _range(1, MAX_HOOKS_CEILING)),
    ("limits.max_command", lambda c: c.limits.max_command, _range(64, 1_048_576)),
    ("limits.max_nesting", lambda c: c.limits.max_nesting, _range(1, 256)),
    ("limits.max_rpcs", lambda c: c.limits.max_rpcs, _range(1, 65_536)),
    ("limits.max_streams", lambda c: c.limits.max_streams, _range(1, 65_536)),
    ("grpc.listen", lambda c: c.grpc.listen, _address),
    ("metrics.listen", lambda c: c.metrics.listen or "unset:0", _address),
    ("mqtt.host", lambda c: c.mqtt.host, _text),
    ("mqtt.keepalive", lambda c: c.mqtt.keepalive, _range(1, 65_535)),
    ("mqtt.session_expiry", lambda c: c.mqtt.session_expiry, _range(0, 2**32 - 1)),
    ("mqtt.ack_timeout", lambda c: c.mqtt.ack_timeout, _range(0.1, 3600)),
    ("mqtt.catchup_rate", lambda c: c.mqtt.catchup_rate, _range(0.001, 1_000_000)),
    ("sim.rate", lambda c: c.sim.rate, _range(0, 10_000_000)),
    ("sim.seed", lambda c: c.sim.seed, _range(0, 2**63 - 1)),
    ("kvm.break_timeout", lambda c: c.kvm.break_timeout, _range(0.001, DAY)),
    ("kvm.flood_limit", lambda c: c.kvm.flood_limit, _range(0, 1_000_000_000)),
    ("kvm_trace.tracefs", lambda c: c.kvm_trace.tracefs, _text),
]


def range_problems(cfg: Any) -> list[str]:
    """One line per key of ``cfg`` (an AgentConfig) out of its range."""
    found = ((key, check(get(cfg))) for key, get, check in RULES)
    return [f"{key}: {problem}" for key, problem in found if problem]
