"""Fuzz target: the hook language. Any text parses to a valid spec or raises HookSyntaxError."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.agent.test_lang_props import _check_total, grammarish
from tests.fuzz.budget import run


@given(st.one_of(st.text(), grammarish(), st.binary().map(lambda b: b.decode("latin-1"))))
def lang_target(command: str) -> None:
    _check_total(command)


def test_fuzz_the_hook_language() -> None:
    assert run(lang_target) >= 1
