"""Validated value objects shared by the agent and the controller's public contract.

Host ids and hook ids: ``[a-z0-9][a-z0-9._-]{0,63}`` (never ``/``, ``+``, ``#``, so they are safe
as MQTT topic levels).
"""

from __future__ import annotations

import re
from enum import IntEnum, StrEnum

__all__ = [
    "ID_PATTERN",
    "LABEL_KEY",
    "LABEL_VALUE",
    "MAX_PORT",
    "REQUEST_ID",
    "Capability",
    "Direction",
    "Stage",
    "check_id",
    "check_label",
]

# gRPC trailing metadata on every refusal by an agent: tells an agent's answer apart from a
# transport failure (both can be UNAVAILABLE) and ties a client's error to the agent's log line.
REQUEST_ID = "ioin-request-id"

ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}\Z")
# Labels as Kubernetes has them: an optional DNS-subdomain prefix and a name; values may be empty.
_LABEL_NAME = r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?"
LABEL_KEY = re.compile(rf"([a-z0-9]([a-z0-9.-]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}")
LABEL_VALUE = re.compile(rf"({_LABEL_NAME})?")
MAX_PORT = 0xFFFF  # x86 I/O space is 64 KiB (SDM vol. 1, 18.2)


def check_label(key: str, value: str) -> None:
    """``ValueError`` naming the key or value when ``key=value`` is not a valid label."""
    if not LABEL_KEY.fullmatch(key):
        raise ValueError(f"label key '{key}' is not a valid key (name, or prefix/name)")
    if not LABEL_VALUE.fullmatch(value):
        raise ValueError(f"label '{key}': value '{value}' is not a valid label value")


def check_id(kind: str, value: str) -> str:
    """Return ``value`` if it is a valid host or hook id, else raise ``ValueError`` naming it."""
    if not ID_PATTERN.match(value):
        raise ValueError(f"invalid {kind} '{value}': must match [a-z0-9][a-z0-9._-]{{0,63}}")
    return value


class Direction(IntEnum):
    """Same numbers as ``ioin.v1.Direction``."""

    IN = 1
    OUT = 2

    @property
    def label(self) -> str:
        return "in" if self is Direction.IN else "out"


class Stage(IntEnum):
    """Same numbers as ``ioin.v1.Stage``; an event's stage is PRE or POST."""

    PRE = 1
    POST = 2
    ALL = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class Capability(StrEnum):
    """What a backend can do; a hook needing one the backend lacks is refused."""

    IN = "in"  # observe IN
    OUT = "out"  # observe OUT
    PID = "pid"  # filter by VM / process
    CORE = "core"  # filter by vCPU / CPU
    STAGE_POST = "stage-post"  # run after emulation
    MODIFY = "modify"  # change the value read or written (`set N`)
    SKIP = "skip"  # skip the instruction (`sc on`)
    BREAK = "break"  # pause the vCPU until resumed (`break`)
    REGS = "regs"  # events carry rip and registers
    VMS = "vms"  # runs its own VMs (StartVm / StopVm / ListVms)
    SCRIPT = "script"  # runs condition { } and script { } blocks (HyperDbg's script language)
    MEMORY = "memory"  # scripts read and write guest memory (poi, db, eb, memcpy, ...)
