"""Input limits (issue 10, item 5): a command's length and nesting, and no error echoing
unbounded input (a 1 MB id in DisableHook overflowed the client's 16 KB metadata limit)."""

from __future__ import annotations

import pytest

from agent.errors import HookNotFound, HookSyntaxError, NotFoundError
from agent.hooks.lang import MAX_COMMAND, MAX_NESTING, parse
from agent.model import check_id

MB = "x" * 2**20


def test_a_command_over_the_length_limit_is_refused_without_being_echoed() -> None:
    command = "!ioin 0x3f8 condition { " + "a" * MAX_COMMAND + " }"
    with pytest.raises(HookSyntaxError) as info:
        parse(command)
    assert (
        str(info.value)
        == f"command is {len(command)} characters long, over {MAX_COMMAND} (limits.max_command)"
    )
    assert info.value.token == ""
    assert parse("!ioin 0x3f8 condition { " + "a" * 100 + " }", max_length=200).port == 0x3F8


def test_braces_nested_over_the_limit_are_refused() -> None:
    deep = "!ioin 1 script " + "{" * (MAX_NESTING + 1) + "}" * (MAX_NESTING + 1)
    with pytest.raises(HookSyntaxError, match=f"nested deeper than {MAX_NESTING}"):
        parse(deep)
    ok = "!ioin 1 script " + "{" * MAX_NESTING + "}" * MAX_NESTING
    assert parse(ok).script == "{" * (MAX_NESTING - 1) + "}" * (MAX_NESTING - 1)
    with pytest.raises(HookSyntaxError, match="nested deeper than 2"):
        parse("!ioin 1 script {{{}}}", max_nesting=2)


def bad_id() -> Exception:
    try:
        check_id("hook id", MB)
    except ValueError as exc:
        return exc
    raise AssertionError("a 1 MB id passed check_id")


@pytest.mark.parametrize(
    "exc",
    [HookNotFound(MB), NotFoundError("vm", MB), bad_id()],
    ids=["HookNotFound", "NotFoundError", "check_id"],
)
def test_errors_show_at_most_80_characters_of_an_id(exc: Exception) -> None:
    assert len(str(exc)) < 200
    assert "…(+1048496)" in str(exc)
