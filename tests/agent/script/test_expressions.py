"""Literals, every operator and precedence level, 64-bit wrap, signed comparisons."""

from __future__ import annotations

import pytest

from agent.script import ScriptAbort, ScriptError

from .conftest import cond, run, value

M = (1 << 64) - 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10", 0x10),  # hex by default
        ("0x10", 0x10),
        ("0n10", 10),
        ("0y101", 5),
        ("0o17", 15),
        ("ffff`ffff", 0xFFFFFFFF),  # backticks separate digits
        ("dc", 0xDC),  # a bare word of hex digits is a number, as in HyperDbg
        ("b0", 0xB0),
        ("0n 100", 100),  # blanks after a prefix, as HyperDbg's semantic suite writes it
        ("FF", 0xFF),  # hex digits in either case, as HyperDbg's scanner
        ("5 a", 0x5A),  # a hex word after a hex number: the semantic suite's one joined form
    ],
)
def test_literals(text: str, expected: int) -> None:
    assert value(text) == expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("1 | 2 ^ 3 & 1", 1 | (2 ^ (3 & 1))),
        ("1 << 4 + 1", 1 << 5),  # + binds tighter than <<
        ("6 & 3 << 1", 6 & 6),  # << binds tighter than &
        ("7 % 4 * 2", (7 % 4) * 2),  # left-associative
        ("0n20 / 4 / 2", 2),
        ("0n10 - 4 - 3", 3),  # left-associative
        ("-1", M),
        ("~0", M),
        ("!0", 1),
        ("!5", 0),
        ("+-3", M - 2),
        ("++3", 3),  # two unary pluses, as HyperDbg reads them
        ("--3", 3),
        ("0 - 1", M),  # wraps
        ("ffffffffffffffff + 2", 1),
        ("100000000 * 100000000", 0),  # 2^64 wraps to 0
        ("-8 / 2", (M - 7) // 2),  # unsigned division
        ("-8 % 3", (M - 7) % 3),
        ("1 << 0n63", 1 << 63),
        ("1 << 0n64", 0),  # shifting by 64 or more gives 0
        ("-1 >> 0n60", 0xF),  # logical shift
    ],
)
def test_operators_and_precedence(expr: str, expected: int) -> None:
    assert value(expr) == expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("3 == 3", 1),
        ("3 != 3", 0),
        ("-1 < 0", 1),  # signed comparisons
        ("-1 > 0", 0),
        ("0 <= -1", 0),
        ("-2 >= -3", 1),
        ("1 == 1 && 2 == 2", 1),
        ("1 == 2 || 0", 0),
        ("5 && 7", 1),  # && and || give 0 or 1
        ("0 || 9", 1),
        ("1 < 2 == 1", 1),  # comparisons share one level, left to right
        ("1 | 2 == 2", 1 | 1),  # comparisons bind tighter than |
    ],
)
def test_comparisons_and_logic_in_conditions(expr: str, expected: int) -> None:
    assert cond(expr) == expected
    assert run(f"if ({expr}) {{ print(1); }} else {{ print(0); }}").lines == [str(expected)]


@pytest.mark.parametrize(("source", "token"), [("x = 1 || 1 & 0;", "||"), ("print(2 > 1);", ">")])
def test_comparisons_only_in_conditions_as_in_hyperdbg(source: str, token: str) -> None:
    with pytest.raises(ScriptError, match="is allowed only in a condition") as info:
        run(source)
    assert info.value.token == token


def test_and_or_short_circuit() -> None:
    # the right side would divide by zero: it is never evaluated
    assert cond("0 && 1 / 0") == 0
    assert cond("1 || 1 / 0") == 1
    with pytest.raises(ScriptAbort, match="division by zero"):
        cond("1 && 1 / 0")


@pytest.mark.parametrize("expr", ["1 / 0", "1 % (2 - 2)"])
def test_division_by_zero_aborts(expr: str) -> None:
    with pytest.raises(ScriptAbort, match="division by zero") as info:
        run(f"x = {expr};")
    assert info.value.reason == "division by zero"


def test_condition_is_one_expression() -> None:
    assert cond("$context == 3f8 && @al != 0", {"context": 0x3F8}, rax=0x141) == 1
    assert cond("$context == 3f8 && @al != 0", {"context": 0x3F8}, rax=0x100) == 0
    assert cond("@rdx == 3f8;") == 0


@pytest.mark.parametrize(
    ("source", "token", "line", "col"),
    [
        ("x = 1 +;", ";", 1, 8),
        ("x = (1;", ";", 1, 7),
        ("\n  y = 0n12z;", "0n12z", 2, 7),
        ("if (1) x = 1;", "x", 1, 8),  # braces are required, as in HyperDbg
        ("x = 1", "", 1, 6),  # end of script
        ('x = "s";', '"', 1, 5),
        ("x = 1; } ", "}", 1, 8),
        ("5 = 1;", "5", 1, 1),
        ("$context = 1;", "$context", 1, 1),
        ("x = 0y102;", "0y102", 1, 5),
        ("x = 1 # 2;", "#", 1, 7),
        ("x = 1 2;", "2", 1, 7),  # blanks do not join digits
        ("x = 0n 1 2;", "2", 1, 10),
        ("x = 0N10;", "0N10", 1, 5),  # prefixes are lower case
        ("x = 0X1f;", "0X1f", 1, 5),
    ],
)
def test_parse_errors_name_the_token_and_position(
    source: str, token: str, line: int, col: int
) -> None:
    with pytest.raises(ScriptError) as info:
        run(source)
    assert (info.value.token, info.value.line, info.value.col) == (token, line, col)
    assert f"line {line}, column {col}" in str(info.value)


@pytest.mark.parametrize(
    "source", ["x = " + "1 + " * 5000 + "1;", "x = " + "(" * 500 + "1" + ")" * 500 + ";"]
)
def test_very_long_or_deep_expressions_are_refused_not_recursed(source: str) -> None:
    with pytest.raises(ScriptError, match="nested deeper than 200 levels"):
        run(source)
