"""Tokens of HyperDbg's script language (its ``script-engine/code/scanner.c``, re-done).

- Numbers are hex unless prefixed: ``0x`` hex, ``0n`` decimal, ``0y`` binary, ``0o`` octal, the
  prefixes in lower case only (HyperDbg's scanner reads ``0X10`` as ``0`` then a name; we refuse
  it). Backticks are digit separators.
- Blanks end a number, as in HyperDbg's scanner, except in the two forms its semantic test suite
  (``manual-test-cases_30-39.ds``, written for an earlier HyperDbg) relies on: blanks after a
  prefix (``0n 29``), and a hex number then a hex word starting with a letter (``5 a`` is 0x5a).
  A number followed by another number (``1 2``, ``0n10 5``) is refused, naming the second.
- ``@name`` registers, ``$name`` pseudo-registers, ``.name`` globals, bare words (the parser
  decides between keyword, register, function, local and hex number), ``"..."`` / ``L"..."``
  strings with ``\\n \\t \\\\ \\" \\xHH``; ``//`` and ``/* */`` comments.
- Names are case-sensitive, as in HyperDbg (its scanner compares with ``strcmp``): ``x`` and
  ``X`` are two variables; keywords, types, built-in functions, registers and pseudo-registers
  exist only in lower case. A token's ``value`` is its name exactly as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from agent.script.errors import ScriptError

__all__ = ["Kind", "Token", "tokenize"]

MAX_SOURCE = 64 * 1024  # bytes of script text; a hook block, not a program


class Kind(Enum):
    NUM = "number"
    STR = "string"
    WSTR = "wide string"
    WORD = "name"
    REG = "register"
    PSEUDO = "pseudo-register"
    GLOBAL = "global"
    OP = "operator"
    EOF = "end of script"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    text: str  # as written
    line: int
    col: int
    value: int | str = 0  # a number's value, a string's content, a name as written


_SKIP = re.compile(r"[ \t\r\n]+|//[^\n]*|/\*.*?\*/", re.DOTALL)
_OPS = re.compile(r"<<=|>>=|\+\+|--|&&|\|\||==|!=|<=|>=|<<|>>|[-+*/%&|^]=|[-+*/%&|^~!<>=(){};,&]")
_PREFIXED = re.compile(r"0([xnyo])[ \t]*([0-9A-Za-z`_]+)")
_UPPER_PREFIX = re.compile(r"0[XNYO][ \t]*[0-9A-Za-z`_]*")
_WORDCH = re.compile(r"[A-Za-z0-9_`]+")
_NEXT_NUMBER = re.compile(r"[ \t]+([0-9][A-Za-z0-9_`]*)")
_HEX_TAIL = re.compile(r"[ \t]+([a-fA-F][0-9a-fA-F`]*)(?![A-Za-z0-9_`(])")  # "5 a", the suite's
_SIGIL = re.compile(r"([@$.])([A-Za-z_][A-Za-z0-9_]*)")
_BASES = {"x": 16, "n": 10, "y": 2, "o": 8}
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "0": "\0", "r": "\r"}


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens; the last is EOF. Raises :class:`ScriptError`."""
    if len(text.encode("utf-8", "replace")) > MAX_SOURCE:
        raise ScriptError(f"script longer than {MAX_SOURCE} bytes")
    out: list[Token] = []
    pos, line, start = 0, 1, 0
    while pos < len(text):
        col = pos - start + 1
        if m := _SKIP.match(text, pos):
            newlines = m.group().count("\n")
            if newlines:
                line += newlines
                start = pos + m.group().rfind("\n") + 1
            pos = m.end()
        elif text.startswith("/*", pos):
            raise ScriptError("unterminated comment", "/*", line, col)
        else:
            token, pos = _one(text, pos, line, col)
            out.append(token)
    out.append(Token(Kind.EOF, "", line, pos - start + 1))
    return out


def _one(text: str, pos: int, line: int, col: int) -> tuple[Token, int]:
    char = text[pos]
    if char == '"' or (char in "Ll" and text.startswith('"', pos + 1)):
        return _string(text, pos, line, col)
    if char.isdigit():
        return _number(text, pos, line, col)
    if char in "@$" or (char == "." and pos + 1 < len(text) and text[pos + 1].isalpha()):
        m = _SIGIL.match(text, pos)
        if m is None:
            raise ScriptError(f"a name must follow '{char}'", char, line, col)
        kind = {"@": Kind.REG, "$": Kind.PSEUDO, ".": Kind.GLOBAL}[char]
        return Token(kind, m.group(), line, col, m.group(2)), m.end()
    if char.isalpha() or char == "_":
        m = _WORDCH.match(text, pos)
        assert m is not None
        return Token(Kind.WORD, m.group(), line, col, m.group()), m.end()
    if m := _OPS.match(text, pos):
        return Token(Kind.OP, m.group(), line, col, m.group()), m.end()
    raise ScriptError(f"unexpected character {char!r}", char, line, col)


def _number(text: str, pos: int, line: int, col: int) -> tuple[Token, int]:
    if m := _UPPER_PREFIX.match(text, pos):
        message = f"number prefixes are lower case (0x, 0n, 0y, 0o), as in HyperDbg: '{m.group()}'"
        raise ScriptError(message, m.group(), line, col)
    m = _PREFIXED.match(text, pos)
    if m is not None:
        base, digits, end = _BASES[m.group(1)], m.group(2), m.end()
    else:
        word = _WORDCH.match(text, pos)
        assert word is not None
        base, digits, end = 16, word.group(), word.end()
        if tail := _HEX_TAIL.match(text, end):
            digits, end = digits + tail.group(1), tail.end()
    written = text[pos:end]
    try:
        if not re.fullmatch(r"[0-9A-Za-z`]+", digits):
            raise ValueError
        value = int(digits.replace("`", ""), base)
    except ValueError:
        raise ScriptError(f"invalid number '{written}'", written, line, col) from None
    if value >> 64:
        raise ScriptError(f"invalid number '{written}' (64-bit values only)", written, line, col)
    if after := _NEXT_NUMBER.match(text, end):  # HyperDbg's scanner ends a number at a blank
        second = after.group(1)
        message = f"two numbers in a row, '{written}' then '{second}' (blanks do not join digits)"
        raise ScriptError(message, second, line, col + after.start(1) - pos)
    return Token(Kind.NUM, written, line, col, value), end


def _string(text: str, pos: int, line: int, col: int) -> tuple[Token, int]:
    wide = text[pos] in "Ll"
    i = pos + 1 + wide
    chars: list[str] = []
    while i < len(text) and text[i] != '"':
        if text[i] == "\n":
            break
        if text[i] == "\\" and i + 1 < len(text):
            esc = text[i + 1]
            if esc == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", text[i + 2 : i + 4]):
                chars.append(chr(int(text[i + 2 : i + 4], 16)))
                i += 4
                continue
            chars.append(_ESCAPES.get(esc, esc))
            i += 2
            continue
        chars.append(text[i])
        i += 1
    if i >= len(text) or text[i] != '"':
        raise ScriptError("unterminated string", text[pos : pos + 12], line, col)
    kind = Kind.WSTR if wide else Kind.STR
    return Token(kind, text[pos : i + 1], line, col, "".join(chars)), i + 1
