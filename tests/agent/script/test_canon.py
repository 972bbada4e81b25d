"""The canonical form (ioinctl explain) reads back as the same program, and the lexer's edges."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.script import ScriptError, canonical, compile_condition, compile_script
from agent.script.lexer import Kind, tokenize

SCRIPTS = [
    "x = 1; y = x + 2 * 3; print(y);",
    "int sub(int x, int y) { return x - y; } void g() { .n = .n + 1; } "
    ".n = 0; g(); print(sub(5, 3));",
    "for (i = 0; i < 3; i++) { if (i == 1) { continue; } elsif (i == 2) { break; } else { } }",
    "x = 0; do { x++; } while (x < 5); while (x) { x--; }",
    'printf("%d \\"q\\" \\n\\t", -1); s = strlen("a\\\\b"); w = wcslen(L"xy");',
    "@al = ~@ah; @r8d = @rip >> 4; memcpy(&a1x, &a1x, 1);".replace("a1x", "kk"),
    "{ x = 1; { y = 2; } }",
]


def strip(tree: object) -> object:
    """The tree without positions (canonical text moves tokens around)."""
    if isinstance(tree, tuple):
        return tuple(strip(t) for t in tree)
    if hasattr(tree, "__dataclass_fields__"):
        fields = {
            k: strip(getattr(tree, k))
            for k in tree.__dataclass_fields__
            if k not in ("line", "col")
        }
        return (type(tree).__name__, fields)
    return tree


@pytest.mark.parametrize("source", SCRIPTS)
def test_canonical_scripts_read_back_the_same(source: str) -> None:
    tree = compile_script(source).tree
    text = canonical(tree)
    assert strip(compile_script(text).tree) == strip(tree)
    assert canonical(compile_script(text).tree) == text


def test_a_function_with_parameters_reads_back_and_computes() -> None:
    """The script above, run: 5 - 3 through named parameters (``a`` and ``b`` would be hex
    numbers in HyperDbg, and are refused as names)."""
    program = compile_script(canonical(compile_script(SCRIPTS[1]).tree))
    globals_: dict[str, int] = {}
    assert program.run({}, {}, globals_).output == "2\n"
    assert globals_ == {"n": 1}


OPS = st.sampled_from(
    [
        "+",
        "-",
        "*",
        "/",
        "%",
        "<<",
        ">>",
        "&",
        "|",
        "^",
        "==",
        "!=",
        "<",
        ">",
        "<=",
        ">=",
        "&&",
        "||",
    ]
)
LEAVES = st.sampled_from(["1", "0n10", "@al", "$context", "ff", "@rax", "0y101"])
EXPRS = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.tuples(inner, OPS, inner).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        st.tuples(st.sampled_from(["-", "~", "!", "+"]), inner).map(lambda t: f"{t[0]}({t[1]})"),
        inner.map(lambda e: f"({e})"),
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(expr=EXPRS)
def test_canonical_conditions_read_back_the_same(expr: str) -> None:
    tree = compile_condition(expr).tree
    assert strip(compile_condition(canonical(tree)).tree) == strip(tree)


def test_lexer_edges() -> None:
    tokens = tokenize('// line\n/* block\n */ x = "a\\x41\\n"; y = L"w";')
    assert [t.kind for t in tokens] == [Kind.WORD, Kind.OP, Kind.STR, Kind.OP, Kind.WORD, Kind.OP,
                                        Kind.WSTR, Kind.OP, Kind.EOF]  # fmt: skip
    assert tokens[0].line == 3
    assert tokens[2].value == "aA\n"


@pytest.mark.parametrize(
    ("source", "token"),
    [('x = "abc', '"abc'), ("/* never closed", "/*"), ("x = @;", "@"), ("x = 0x;", "0x")],
)
def test_lexer_errors_name_the_token(source: str, token: str) -> None:
    with pytest.raises(ScriptError) as info:
        compile_script(source)
    assert info.value.token == token
