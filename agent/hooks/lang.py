"""The hook language: HyperDbg's ``!ioin`` / ``!ioout`` command syntax → ``HookSpec``.

Grammar (keywords and number prefixes case-insensitive, options in any order, each at most once)::

    command  := verb (port | option)*                         at most one port
    verb     := "!ioin" | "ioin"                              IN
              | "!ioout" | "ioout" | "!iout" | "iout"         OUT
    port     := number                                        0..0xffff; omitted = every port
    option   := "pid" (number | "all") | "core" number | "buffer" number
              | "stage" ("pre" | "post" | "all") | "sc" ("on" | "off") | "imm" ("yes" | "no")
              | ("condition" | "script" | "code" | "output") block
              | "break" | "set" number | "rate" number | "burst" number      (ioin-fleet)
    number   := ["0x" | "x"] hexdigit+ | ("0n" | "n") digit+  backticks ignored: fffff801`68d91267
    block    := "{" text "}"       braces nest; \\{ and \\} are literal braces

Tokens are separated by whitespace; ``//`` line comments and ``/* */`` comments are stripped
outside blocks and kept as text inside them (so braces in them still nest). A bare word made only
of hex digits (``cafe``) is a number; a second bare word is an unknown parameter.
Blocks keep their text trimmed and without the outer braces (escapes resolved); ``output`` splits
it on commas. ``condition`` and ``script`` blocks are compiled here (:mod:`agent.script`), so a
syntax, name or arity error in them refuses the hook, naming the token, line and column. Those
count within the block as written, from its first character after ``{`` (line 1, column 1), as
``ioinctl eval`` counts from the script's first character; an escaped brace counts as one.
pid, core, buffer, set, rate and burst are unsigned 32-bit values.

Differences from HyperDbg: ports are range-checked; every error names the offending token (and
``HookSyntaxError.token`` holds it). HyperDbg's default action, when an event has neither script
nor code, is to break to the debugger; a fleet cannot stop for a human, so ours is to *log* the
access as an event, and ``break`` (pause the vCPU until resumed) must be asked for. ``set N`` makes
the guest read (IN, post stage) or write (OUT, pre stage) ``N``. ``rate N`` limits a hook to N
events/s with ``burst`` (default N); ``burst`` needs a non-zero ``rate``.

A hook parsed without an explicit id gets one derived from :func:`canonical`, so the same hook
written differently (``!ioin 0x3f8 core 1`` / ``!IOIN 3F8 CORE 0n1``) has the same id.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

from agent.errors import HookSyntaxError
from agent.hooks.render import canonical, spec_to_json
from agent.hooks.validate import BURST_NEEDS_RATE, check_block, check_combinations
from agent.model import MAX_PORT, check_id
from agent.wire import hooks_pb2

__all__ = ["MAX_COMMAND", "MAX_NESTING", "canonical", "parse", "spec_to_json"]

# Defaults of the agent's `limits.max_command` / `limits.max_nesting`: what one hook may be, so that
# what the agent accepts it can always store, list and send back.
MAX_COMMAND = 16 * 1024  # characters of a command, scripts and conditions included
MAX_NESTING = 32  # depth of nested braces in a block

_U32_MAX = 0xFFFFFFFF
_IN, _OUT = hooks_pb2.DIRECTION_IN, hooks_pb2.DIRECTION_OUT
_PRE, _POST, _ALL = hooks_pb2.STAGE_PRE, hooks_pb2.STAGE_POST, hooks_pb2.STAGE_ALL
_VERBS = {"ioin": _IN, "ioout": _OUT, "iout": _OUT}
_NUMBERS = {  # keyword: (HookSpec field, name used in "err, <name> is invalid")
    "pid": ("pid", "pid"),
    "core": ("core", "core id"),
    "buffer": ("buffer", "buffer size"),
    "set": ("set_value", "set value"),
    "rate": ("rate", "rate"),
    "burst": ("burst", "burst"),
}
_CHOICES = {  # keyword: (accepted values, what HyperDbg's error calls it)
    "stage": (("pre", "post", "all"), "execution mode"),
    "sc": (("on", "off"), "short-circuiting state"),
    "imm": (("yes", "no"), "immediate messaging token"),
}
_BLOCKS = ("condition", "script", "code", "output")
_KEYWORDS = {*_NUMBERS, *_CHOICES, *_BLOCKS, "break"}
_STAGES = {"pre": _PRE, "post": _POST, "all": _ALL}

_SKIP = re.compile(r"\s+|//[^\n]*|/\*.*?\*/", re.DOTALL)
_WORD = re.compile(r"(?:[^\s{}/]|/(?![/*]))+")
_HEX = re.compile(r"(?:0?x)?([0-9a-f]+)", re.ASCII)
_DEC = re.compile(r"0?n([0-9]+)", re.ASCII)


@dataclass(frozen=True, slots=True)
class _Token:
    text: str  # as written, braces included for a block
    block: str | None = None  # a block's content, trimmed, escapes resolved
    raw: str = ""  # a block's content untrimmed (escapes resolved): error positions count in it


# -- tokens -----------------------------------------------------------------------------------


def _tokenize(text: str, max_nesting: int = MAX_NESTING) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        if skip := _SKIP.match(text, pos):
            pos = skip.end()
        elif text[pos] == "{":
            token, pos = _block(text, pos, max_nesting)
            tokens.append(token)
        elif word := _WORD.match(text, pos):
            tokens.append(_Token(word.group()))
            pos = word.end()
        elif text[pos] == "}":
            raise HookSyntaxError("unbalanced braces: '}' without a matching '{'", "}")
        else:  # only "/*" is left: a comment that never ends
            raise HookSyntaxError("unterminated comment: '/*' without '*/'", "/*")
    return tokens


def _block(text: str, start: int, max_nesting: int) -> tuple[_Token, int]:
    depth, pos, content = 1, start + 1, []
    while pos < len(text):
        char, pair = text[pos], text[pos : pos + 2]
        if pair in ("\\{", "\\}"):
            content.append(pair[1])
            pos += 2
            continue
        depth += (char == "{") - (char == "}")
        if depth > max_nesting:
            raise HookSyntaxError(f"braces nested deeper than {max_nesting} (limits.max_nesting)")
        pos += 1
        if depth == 0:
            inner = "".join(content)
            return _Token(text[start:pos], inner.strip(), inner), pos
        content.append(char)
    raise HookSyntaxError("unbalanced braces: '{' without a matching '}'", "{")


def _fold(word: str) -> str:
    """Lower-case ASCII words only, so no exotic character folds into a keyword."""
    return word.lower() if word.isascii() else word


def _number(word: str) -> int | None:
    text = _fold(word.replace("`", ""))
    if match := _HEX.fullmatch(text):
        return int(match[1], 16)
    if match := _DEC.fullmatch(text):
        digits = match[1].lstrip("0") or "0"
        # Past 20 digits it is out of every range; int() refuses > 4300 digits anyway.
        return int(digits) if len(digits) <= 20 else 1 << 64
    return None


def _show(token: str) -> str:
    return repr(token) if len(token) <= 40 else repr(token[:37] + "...")


# -- parsing ----------------------------------------------------------------------------------


def parse(
    command: str,
    *,
    hook_id: str | None = None,
    max_length: int = MAX_COMMAND,
    max_nesting: int = MAX_NESTING,
) -> hooks_pb2.HookSpec:
    """Parse one ``!ioin`` / ``!ioout`` command; raises only :class:`HookSyntaxError`.

    A SetHook is parsed twice, by the role check (what does this hook do to the guest?) and by
    the hook service, and a fleet sends the same commands again and again: the result is kept
    (serialized, so no caller shares a message; bounded: 512 commands of at most 4 KiB, least
    recently used first out)."""
    if len(command) > 4096:
        return _parse(command, hook_id, max_length, max_nesting)
    return hooks_pb2.HookSpec.FromString(_parsed(command, hook_id, max_length, max_nesting))


@functools.lru_cache(maxsize=512)
def _parsed(command: str, hook_id: str | None, max_length: int, max_nesting: int) -> bytes:
    return _parse(command, hook_id, max_length, max_nesting).SerializeToString()


def _parse(
    command: str, hook_id: str | None, max_length: int, max_nesting: int
) -> hooks_pb2.HookSpec:
    text = command.strip()
    if len(text) > max_length:
        raise HookSyntaxError(
            f"command is {len(text)} characters long, over {max_length} (limits.max_command)"
        )
    _check_encodable(text)
    tokens = _tokenize(text, max_nesting)
    if not tokens:
        raise HookSyntaxError("empty command", "")
    spec = hooks_pb2.HookSpec(direction=_verb(tokens[0]), stage=_PRE, immediate=True)
    seen: set[str] = set()  # keywords given so far
    rest = iter(tokens[1:])
    for token in rest:
        _parameter(spec, seen, token, rest)
    _check_combinations(spec, seen)
    spec.command = text
    spec.id = _hook_id(spec, hook_id)
    return spec


def _check_encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = f"\\u{ord(text[exc.start]):04x}"
        raise HookSyntaxError(f"invalid character '{bad}' at offset {exc.start}", bad) from None


def _verb(token: _Token) -> hooks_pb2.Direction.ValueType:
    direction = _VERBS.get(_fold(token.text).removeprefix("!"))
    if direction is None or token.block is not None:
        message = f"unknown command {_show(token.text)} (expected !ioin, !ioout or !iout)"
        raise HookSyntaxError(message, token.text)
    return direction


def _parameter(
    spec: hooks_pb2.HookSpec, seen: set[str], token: _Token, rest: Iterator[_Token]
) -> None:
    keyword = _fold(token.text) if token.block is None else ""
    if keyword not in _KEYWORDS:
        _port(spec, token)
        return
    if keyword in seen:
        raise HookSyntaxError(f"duplicate parameter {_show(token.text)}", token.text)
    seen.add(keyword)
    if keyword == "break":
        spec.break_ = True
        return
    value = next(rest, None)
    if value is None:
        raise HookSyntaxError(f"err, please specify a value for '{keyword}'", token.text)
    _option(spec, keyword, value)


def _port(spec: hooks_pb2.HookSpec, token: _Token) -> None:
    port = None if token.block is not None else _number(token.text)
    if port is None or spec.HasField("port"):
        raise HookSyntaxError(f"unknown parameter {_show(token.text)}", token.text)
    if port > MAX_PORT:
        raise HookSyntaxError(f"port {_show(token.text)} is out of range 0..0xffff", token.text)
    spec.port = port


def _option(spec: hooks_pb2.HookSpec, keyword: str, value: _Token) -> None:
    if keyword in _BLOCKS:
        _block_option(spec, keyword, value)
    elif keyword in _CHOICES:
        _choice_option(spec, keyword, value)
    elif not (keyword == "pid" and _fold(value.text) == "all"):  # pid all = field absent
        attr, name = _NUMBERS[keyword]
        number = None if value.block is not None else _number(value.text)
        if number is None or number > _U32_MAX:
            raise HookSyntaxError(f"err, {name} is invalid: {_show(value.text)}", value.text)
        setattr(spec, attr, number)


def _choice_option(spec: hooks_pb2.HookSpec, keyword: str, value: _Token) -> None:
    choices, what = _CHOICES[keyword]
    choice = _fold(value.text) if value.block is None else ""
    if choice not in choices:
        expected = ", ".join(f"'{c}'" for c in choices[:-1]) + f" or '{choices[-1]}'"
        message = f"err, the specified {what} {_show(value.text)} is invalid; choose {expected}"
        raise HookSyntaxError(message, value.text)
    if keyword == "stage":
        spec.stage = _STAGES[choice]
    elif keyword == "sc":
        spec.short_circuit = choice == "on"
    else:
        spec.immediate = choice == "yes"


def _block_option(spec: hooks_pb2.HookSpec, keyword: str, value: _Token) -> None:
    if value.block is None:
        message = f"err, please specify a {{ ... }} block for '{keyword}', not {_show(value.text)}"
        raise HookSyntaxError(message, value.text)
    if keyword != "output":
        check_block(keyword, value.raw if value.block else "")
        setattr(spec, keyword, value.block)
        return
    names = [name.strip() for name in value.block.split(",")]
    if not all(names):
        raise HookSyntaxError(f"err, empty name in output {_show(value.text)}", value.text)
    spec.output.extend(names)


def _check_combinations(spec: hooks_pb2.HookSpec, seen: set[str]) -> None:
    check_combinations(spec)  # the rules a spec sent without a command obeys too
    if "burst" in seen and spec.rate == 0:
        raise HookSyntaxError(BURST_NEEDS_RATE, "burst")
    if "burst" not in seen:
        spec.burst = spec.rate
    elif spec.burst == 0:
        raise HookSyntaxError("err, burst is invalid: '0' (must be at least 1)", "burst")


def _hook_id(spec: hooks_pb2.HookSpec, hook_id: str | None) -> str:
    if hook_id is not None:
        try:
            return check_id("hook id", hook_id)
        except ValueError as exc:
            raise HookSyntaxError(str(exc), hook_id) from None
    text = canonical(spec)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    port = f"{spec.port:x}" if spec.HasField("port") else "all"
    return f"{'in' if spec.direction == _IN else 'out'}-{port}-{digest}"
