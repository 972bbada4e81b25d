"""Property tests for the hook language: total on any text, and canonical forms read back."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import HookSyntaxError
from agent.hooks.lang import canonical, parse
from agent.model import MAX_PORT, check_id
from agent.wire import hooks_pb2

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
U32 = st.integers(0, 0xFFFFFFFF)

# -- any text -----------------------------------------------------------------------------------

VERBS = ["!ioin", "ioin", "!IOOUT", "iout", "!iout", "!io", "in"]
KEYWORDS = ["pid", "core", "buffer", "stage", "sc", "imm", "set", "rate", "burst", "break"]
KEYWORDS += ["condition", "script", "code", "output", "all", "pre", "post", "on", "yes", "no"]
JUNK = [
    "{",
    "}",
    "\ud800",
    "\\{",
    "\\}",
    "`",
    "//",
    "/*",
    "*/",
    "/",
    "0x",
    "0n",
    "n",
    "x",
    "!",
    ",",
    "-1",
]
SEPARATORS = st.sampled_from([" ", "  ", "\t", "\n", "", " // c\n", " /* c */ "])


def numbers() -> st.SearchStrategy[str]:
    return st.integers(0, 1 << 40).flatmap(
        lambda n: st.sampled_from([f"{n:x}", f"0x{n:X}", f"x{n:x}", f"0n{n}", f"n{n}", f"{n:x}`0"])
    )


def grammarish() -> st.SearchStrategy[str]:
    word = st.one_of(
        st.sampled_from(VERBS + KEYWORDS + JUNK),
        numbers(),
        st.text(max_size=6),
        st.builds("{{{}}}".format, st.text(max_size=8)),
    )
    pieces = st.lists(st.tuples(word, SEPARATORS), max_size=14)
    return pieces.map(lambda ps: "".join(w + s for w, s in ps))


def _check_total(command: str) -> None:
    try:
        spec = parse(command)
    except HookSyntaxError:
        return
    assert check_id("hook id", spec.id) == spec.id
    assert spec.direction in (hooks_pb2.DIRECTION_IN, hooks_pb2.DIRECTION_OUT)
    assert not spec.HasField("port") or spec.port <= MAX_PORT


@FAST
@given(st.text())
def test_any_text_parses_or_raises_hook_syntax_error(command: str) -> None:
    _check_total(command)


@FAST
@given(grammarish())
def test_token_soup_parses_or_raises_hook_syntax_error(command: str) -> None:
    _check_total(command)


@FAST
@given(st.sampled_from(VERBS[:5]), grammarish())
def test_token_soup_after_a_verb(verb: str, rest: str) -> None:
    _check_total(f"{verb} {rest}")


@FAST
@given(st.text(), st.text())
def test_any_hook_id_is_accepted_or_refused_cleanly(command: str, hook_id: str) -> None:
    with contextlib.suppress(HookSyntaxError):
        parse(f"!ioin {command}", hook_id=hook_id)


# -- valid commands -----------------------------------------------------------------------------


CASES: st.SearchStrategy[Callable[[str], str]] = st.sampled_from(
    [str, str.upper, str.title, str.swapcase]
)
NUMBER_FORMS = st.sampled_from(["{:x}", "0x{:x}", "x{:x}", "0n{:d}", "n{:d}", "{:x}`"])
PLAIN = st.text(alphabet="abz09 ;()@=$\n*/,\\", max_size=8).filter(lambda t: t[-1:] != "\\")
ESCAPED = st.sampled_from(["\\{", "\\}", " \\{ ", " \\} "])
BODY = st.recursive(
    st.one_of(PLAIN, ESCAPED),
    lambda inner: st.one_of(st.lists(inner, max_size=3).map("".join), inner.map("{{{}}}".format)),
    max_leaves=6,
)
NAMES = st.lists(st.text(alphabet="abcxyz019_.-", min_size=1, max_size=5), min_size=1, max_size=3)
VERB_WORDS = st.sampled_from(["!ioin", "ioin", "!ioout", "ioout", "!iout", "iout"])
NUMBERED = {"pid": U32, "core": U32, "buffer": U32, "set": U32, "port": st.integers(0, MAX_PORT)}
CHOSEN = st.sets(
    st.sampled_from([*NUMBERED, "pid all", "imm", "sc", "break", "stage", "rate", "burst"])
)
BLOCKS = st.sets(st.sampled_from(["condition", "script", "code", "output"]))
# condition and script blocks are compiled (agent.script): drawn from valid ones; code stays text
SCRIPTS = st.sampled_from(
    ["x = 1;", "if (@al == 41) { @al = 42; }", ".n++;", 'printf("%x", $core);']
)
CONDITIONS = st.sampled_from(["1", "$context == 3f8", "@al != 0 && $core < 2"])


def number(draw: st.DrawFn, values: st.SearchStrategy[int]) -> str:
    return draw(CASES)(draw(NUMBER_FORMS).format(draw(values)))


def option(draw: st.DrawFn, name: str, stage: str) -> str:
    """One option, ``name`` cased and its value drawn (``sc on`` only where the stage allows)."""
    if name in NUMBERED:
        text = number(draw, NUMBERED[name])
        return text if name == "port" else f"{draw(CASES)(name)} {text}"
    values = {"imm": ["yes", "no"], "sc": ["off", "on"][: 2 if stage == "pre" else 1]}
    if name in values:
        return draw(CASES)(f"{name} {draw(st.sampled_from(values[name]))}")
    return draw(CASES)(f"stage {stage}" if name == "stage" else name)


def block(draw: st.DrawFn, name: str) -> str:
    bodies = {"script": SCRIPTS, "condition": CONDITIONS, "code": BODY}
    body = ", ".join(draw(NAMES)) if name == "output" else draw(bodies[name])
    return f"{draw(CASES)(name)} {{ {body} }}"


def rate(draw: st.DrawFn, chosen: set[str]) -> list[str]:
    """``rate`` alone (any value) or with ``burst`` (both at least 1)."""
    if "burst" in chosen:
        low = st.integers(1, 0xFFFFFFFF)
        return [f"rate {number(draw, low)}", f"BURST {number(draw, low)}"]
    return [f"Rate {number(draw, U32)}"] if "rate" in chosen else []


@st.composite
def valid_commands(draw: st.DrawFn) -> str:
    stage = draw(st.sampled_from(["pre", "post", "all"]))
    chosen = draw(CHOSEN)
    if "pid all" in chosen:
        chosen.discard("pid")
    words = [option(draw, name, stage) for name in chosen - {"rate", "burst"}]
    words += [block(draw, name) for name in draw(BLOCKS)] + rate(draw, chosen)
    words = draw(st.permutations(words))
    verb = draw(CASES)(draw(VERB_WORDS))
    return verb + "".join(draw(SEPARATORS.filter(bool)) + word for word in words)


@FAST
@given(valid_commands(), st.sampled_from(["", "  ", "\n", " // trailing comment"]))
def test_canonical_reads_back_as_the_same_hook(command: str, suffix: str) -> None:
    spec = parse(command)
    text = canonical(spec)
    again = parse(text)
    assert again.command == text
    again.command = spec.command
    assert again == spec
    assert canonical(again) == text
    assert parse(command + suffix).id == spec.id  # layout and comments do not change the id
