"""Label selectors: Kubernetes' syntax, matching, and refusals that name the token."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.errors import SelectorError
from controller.selectors import Op, Requirement, parse_selector

WEB_FRA = {"role": "web", "dc": "fra1", "tier": "a"}
WEB_AMS = {"role": "web", "dc": "ams", "tier": "b"}
DB_CANARY = {"role": "db", "dc": "fra1", "canary": "yes"}


def test_the_issue_example_parses_into_four_requirements() -> None:
    sel = parse_selector("role=web,dc!=ams,tier in (a,b),!canary")
    assert sel.requirements == (
        Requirement("role", Op.EQ, frozenset({"web"})),
        Requirement("dc", Op.NE, frozenset({"ams"})),
        Requirement("tier", Op.IN, frozenset({"a", "b"})),
        Requirement("canary", Op.ABSENT),
    )
    assert sel.matches(WEB_FRA)
    assert not sel.matches(WEB_AMS)  # dc!=ams
    assert not sel.matches(DB_CANARY)


@pytest.mark.parametrize(
    ("text", "matching"),
    [
        ("", ["web_fra", "web_ams", "db_canary"]),
        ("role==web", ["web_fra", "web_ams"]),
        ("role = web", ["web_fra", "web_ams"]),
        ("dc notin (ams, x)", ["web_fra", "db_canary"]),
        ("canary", ["db_canary"]),
        ("canary exists", ["db_canary"]),
        ("!canary,role", ["web_fra", "web_ams"]),
        ("tier in (b)", ["web_ams"]),
        ("tier notin (a)", ["web_ams", "db_canary"]),  # absent counts as not in
        ("zone!=x", ["web_fra", "web_ams", "db_canary"]),
        ("example.com/team=red", []),
        ("role=", []),
    ],
)
def test_matching(text: str, matching: list[str]) -> None:
    labels = {"web_fra": WEB_FRA, "web_ams": WEB_AMS, "db_canary": DB_CANARY}
    sel = parse_selector(text)
    assert [name for name, lab in labels.items() if sel.matches(lab)] == matching


@pytest.mark.parametrize(
    ("text", "token", "problem"),
    [
        ("role=web,", "", "expected a label key, got the end"),
        ("role=web dc=ams", "dc", "expected ',' between requirements"),
        ("role=we$b", "we$b", "not a valid label value"),
        ("-role=web", "-role", "not a valid label key"),
        ("tier in a,b", "a", "expected '(' after in / notin"),
        ("tier in (a b)", "b", "expected ',' or ')' in a value set"),
        ("tier in (a,b", "", "expected ',' or ')', got the end"),
        ("role ~ web", "~", "expected =, ==, !=, in, notin or exists"),
        ("!", "", "expected a label key, got the end"),
        (",", ",", "not a valid label key"),
        ("tier in ()", ")", "a value set cannot be empty (as in Kubernetes)"),
        ("tier IN (a)", "IN", "expected =, ==, !=, in, notin or exists"),
    ],
)
def test_refusals_name_the_token(text: str, token: str, problem: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_selector(text)
    assert info.value.token == token
    assert info.value.problem == problem
    if token:
        assert info.value.pos == text.index(token)
        assert f"'{token}' at {info.value.pos}: {problem}" in str(info.value)
    assert str(info.value).startswith(f"selector '{text}': ")


_name = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True)


@given(st.dictionaries(_name, _name, max_size=4), _name, _name)
def test_equality_and_inequality_partition_every_label_set(
    labels: dict[str, str], key: str, value: str
) -> None:
    eq, ne = parse_selector(f"{key}={value}"), parse_selector(f"{key}!={value}")
    assert eq.matches(labels) != ne.matches(labels)
    has, absent = parse_selector(key), parse_selector(f"!{key}")
    assert has.matches(labels) != absent.matches(labels)
    assert parse_selector(f"{key} in ({value})").matches(labels) == eq.matches(labels)
