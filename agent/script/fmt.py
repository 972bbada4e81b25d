"""``printf`` formats, parsed once when the script is compiled.

Conversions ``%d %i %u %x %X %o %c %p %s`` (``%ws`` / ``%ls`` for wide strings) with the length
modifiers ``hh h l ll`` and optional ``-`` / ``0`` flags and a width, as HyperDbg passes them to
the Windows C library: with no modifier or ``l`` a number is 32 bits wide (Windows is LLP64),
``ll`` 64, ``h`` 16 and ``hh`` 8. ``%p`` prints 16 upper-case hex digits. ``%%`` is a percent.
The number of conversions must equal the number of arguments (checked at compile time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Conversion", "FormatError", "parse_format", "render"]

_SPEC = re.compile(r"%(?P<flags>[-0]*)(?P<width>[0-9]*)(?P<len>hh|h|ll|l|I64|w)?(?P<conv>.?)")
_WIDTHS = {None: 32, "l": 32, "ll": 64, "I64": 64, "h": 16, "hh": 8, "w": 32}
_CONVS = frozenset("diuxXocps")


class FormatError(ValueError):
    """A format the compiler refuses; ``spec`` is the conversion as written."""

    def __init__(self, message: str, spec: str) -> None:
        self.spec = spec
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Conversion:
    spec: str  # as written
    conv: str
    bits: int
    flags: str
    width: int


Piece = str | Conversion


def parse_format(fmt: str) -> list[Piece]:
    pieces: list[Piece] = []
    pos = 0
    while (i := fmt.find("%", pos)) >= 0:
        if i > pos:
            pieces.append(fmt[pos:i])
        if fmt.startswith("%%", i):
            pieces.append("%")
            pos = i + 2
            continue
        m = _SPEC.match(fmt, i)
        assert m is not None  # the pattern matches any "%"
        conv = m["conv"]
        if conv not in _CONVS:
            raise FormatError(f"unknown printf conversion '{m.group()}'", m.group())
        width = int(m["width"] or 0)
        if width > 64:
            raise FormatError(f"printf width too large in '{m.group()}'", m.group())
        bits = 64 if conv == "p" else _WIDTHS[m["len"]]
        pieces.append(Conversion(m.group(), conv, bits, m["flags"], width))
        pos = m.end()
    if pos < len(fmt):
        pieces.append(fmt[pos:])
    return pieces


def render(conv: Conversion, value: int | str) -> str:
    """One conversion of ``value`` (an int, or the text of a string argument for ``%s``)."""
    text = value if isinstance(value, str) else _number(conv, value & ((1 << conv.bits) - 1))
    if len(text) >= conv.width:
        return text
    if "-" in conv.flags:
        return text.ljust(conv.width)
    pad = "0" if "0" in conv.flags and conv.conv not in "cs" else " "
    if pad == "0" and text.startswith("-"):
        return "-" + text[1:].rjust(conv.width - 1, "0")
    return text.rjust(conv.width, pad)


def _number(conv: Conversion, v: int) -> str:
    match conv.conv:
        case "d" | "i":
            return str(v - (1 << conv.bits) if v >> (conv.bits - 1) else v)
        case "u":
            return str(v)
        case "x":
            return f"{v:x}"
        case "X":
            return f"{v:X}"
        case "o":
            return f"{v:o}"
        case "c":
            return chr(v & 0xFF)
        case "p":
            return f"{v:016X}"
    return str(v)  # %s given a number: its value (a guest address is read by the caller)
