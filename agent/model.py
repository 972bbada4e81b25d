"""Validated value objects shared by the agent and the controller's public contract.

Host ids and hook ids: ``[a-z0-9][a-z0-9._-]{0,63}`` (never ``/``, ``+``, ``#``, so they are safe
as MQTT topic levels). Also the package's version (:func:`version`), read when first asked for.
"""

from __future__ import annotations

import functools
import re
from enum import IntEnum, StrEnum

__all__ = [
    "ID_PATTERN",
    "LABEL_KEY",
    "LABEL_VALUE",
    "MAX_PORT",
    "REQUEST_ID",
    "SHOWN_ID",
    "Capability",
    "Direction",
    "Stage",
    "check_id",
    "check_label",
    "printable",
    "version",
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


SHOWN_ID = 80  # characters of an id an error message shows: input is never echoed unbounded


def check_id(kind: str, value: str) -> str:
    """Return ``value`` if it is a valid host or hook id, else raise ``ValueError`` naming it."""
    if not ID_PATTERN.match(value):
        shown = printable(value, SHOWN_ID)
        raise ValueError(f"invalid {kind} '{shown}': must match [a-z0-9][a-z0-9._-]{{0,63}}")
    return value


# C0 controls, DEL, C1 controls, and the Unicode bidi overrides / isolates (they reorder text).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str, limit: int = 1024) -> str:
    """``text`` safe for a terminal: control characters as ``\\xNN`` / ``\\uNNNN``, at most
    ``limit`` characters (an ellipsis and the cut count mark a cut)."""
    cut = len(text) - limit
    shown = _CONTROL.sub(_escape, text[:limit] if cut > 0 else text)
    return f"{shown}…(+{cut})" if cut > 0 else shown


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


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


@functools.cache
def version() -> str:
    """The installed package's version ("0.0.0" in a source tree that was never installed).

    Read on first use: importlib.metadata costs every ``ioinctl`` run 20 ms otherwise.
    """
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("ioin-fleet")
    except PackageNotFoundError:
        return "0.0.0"
