"""Label selectors in Kubernetes' syntax: ``role=web,dc!=ams,tier in (a,b),!canary``.

A selector is a comma-separated list of requirements, all of which must hold:

==========================  =============================================
``key=value``, ``key==v``   the label is set to ``value``
``key!=value``              the label is absent or set to something else
``key in (a,b)``            the label is set to one of the values
``key notin (a,b)``         the label is absent or set to none of them
``key`` (``exists``)        the label is set (to anything)
``!key``                    the label is absent
==========================  =============================================

Keys and values follow Kubernetes' rules (an optional ``prefix/`` before a name of letters,
digits, ``-``, ``_`` and ``.``; values may be empty). Every refusal is a
:class:`~controller.errors.SelectorError` naming the offending token and its position.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from agent.model import LABEL_KEY, LABEL_VALUE  # the agent checks its labels with the same
from controller.errors import SelectorError

__all__ = ["LABEL_KEY", "LABEL_VALUE", "Op", "Requirement", "Selector", "parse_selector"]

# One lexical token: an operator, a parenthesis or comma, or a word (key, value, in, notin).
_TOKEN = re.compile(r"\s*(==|!=|=|!|\(|\)|,|[^\s=!(),]+)")


class Op(StrEnum):
    """What a requirement asks of its label."""

    EQ = "="
    NE = "!="
    IN = "in"
    NOTIN = "notin"
    EXISTS = "exists"
    ABSENT = "!"


@dataclass(frozen=True, slots=True)
class Requirement:
    """One requirement: ``key`` ``op`` ``values``."""

    key: str
    op: Op
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        match self.op:
            case Op.EQ | Op.IN:
                return value is not None and value in self.values
            case Op.NE | Op.NOTIN:
                return value is None or value not in self.values
            case Op.EXISTS:
                return value is not None
            case Op.ABSENT:
                return value is None


@dataclass(frozen=True, slots=True)
class Selector:
    """All of ``requirements`` (an empty selector selects everything)."""

    requirements: tuple[Requirement, ...] = ()
    text: str = ""

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return self.text


class _Tokens:
    """The selector's tokens with their offsets, consumed left to right."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.items: list[tuple[str, int]] = []
        pos = 0
        while pos < len(text) and text[pos:].strip():
            m = _TOKEN.match(text, pos)
            assert m is not None  # the word alternative matches any non-space run
            self.items.append((m.group(1), m.start(1)))
            pos = m.end()
        self.i = 0

    def peek(self) -> str | None:
        return self.items[self.i][0] if self.i < len(self.items) else None

    def take(self, what: str) -> str:
        if self.i >= len(self.items):
            raise SelectorError(self.text, "", len(self.text), f"expected {what}, got the end")
        token = self.items[self.i][0]
        self.i += 1
        return token

    def fail(self, problem: str, back: int = 1) -> SelectorError:
        token, pos = self.items[self.i - back]
        return SelectorError(self.text, token, pos, problem)


def parse_selector(text: str) -> Selector:
    """Parse ``text``; ``SelectorError`` names the offending token."""
    tokens = _Tokens(text)
    if tokens.peek() is None:
        return Selector((), text.strip())  # the empty selector selects everything
    reqs = [_requirement(tokens)]
    while tokens.peek() is not None:
        if tokens.take("','") != ",":
            raise tokens.fail("expected ',' between requirements")
        reqs.append(_requirement(tokens))  # a trailing comma wants one more
    return Selector(tuple(reqs), text.strip())


def _requirement(tokens: _Tokens) -> Requirement:
    if tokens.peek() == "!":
        tokens.take("'!'")
        return Requirement(_key(tokens), Op.ABSENT)
    key = _key(tokens)
    nxt = tokens.peek()
    if nxt in (None, ","):
        return Requirement(key, Op.EXISTS)
    op = tokens.take("an operator")
    if op in ("=", "==", "!="):
        return Requirement(key, Op.NE if op == "!=" else Op.EQ, frozenset([_value(tokens)]))
    if op in ("in", "notin"):  # lowercase only, as Kubernetes spells them
        return Requirement(key, Op(op), _value_set(tokens))
    if op == "exists":
        return Requirement(key, Op.EXISTS)
    raise tokens.fail("expected =, ==, !=, in, notin or exists")


def _key(tokens: _Tokens) -> str:
    key = tokens.take("a label key")
    if not LABEL_KEY.fullmatch(key):
        raise tokens.fail("not a valid label key")
    return key


def _value(tokens: _Tokens) -> str:
    if tokens.peek() in (None, ",", ")"):
        return ""  # `key=` selects the empty value, as in Kubernetes
    value = tokens.take("a value")
    if not LABEL_VALUE.fullmatch(value):
        raise tokens.fail("not a valid label value")
    return value


def _value_set(tokens: _Tokens) -> frozenset[str]:
    if tokens.take("'('") != "(":
        raise tokens.fail("expected '(' after in / notin")
    if tokens.peek() == ")":
        tokens.take("')'")
        raise tokens.fail("a value set cannot be empty (as in Kubernetes)")
    values = [_value(tokens)]
    while (sep := tokens.take("',' or ')'")) == ",":
        values.append(_value(tokens))
    if sep != ")":
        raise tokens.fail("expected ',' or ')' in a value set")
    return frozenset(values)
