"""The hook language: every rule and every error message, table-driven."""

from __future__ import annotations

import json
import re

import pytest

from agent.errors import HookSyntaxError
from agent.hooks.lang import canonical, parse, spec_to_json
from agent.model import check_id
from agent.wire import hooks_pb2

# -- valid commands -----------------------------------------------------------------------------

DEFAULTS: dict[str, object] = {
    "direction": "in",
    "port": None,
    "pid": None,
    "core": None,
    "stage": "pre",
    "short_circuit": False,
    "immediate": True,
    "buffer": None,
    "condition": "",
    "script": "",
    "code": "",
    "output": [],
    "break": False,
    "set_value": None,
    "rate": 0,
    "burst": 0,
}

VALID: list[tuple[str, dict[str, object]]] = [
    # the command word
    ("!ioin", {}),
    ("ioin", {}),
    ("!IoIn", {}),
    ("!ioout", {"direction": "out"}),
    ("IOOUT", {"direction": "out"}),
    ("!iout", {"direction": "out"}),
    ("iout 60", {"direction": "out", "port": 0x60}),
    # numbers: hex by default, prefixes, backticks
    ("!ioin 3f8", {"port": 0x3F8}),
    ("!ioin 0x3f8", {"port": 0x3F8}),
    ("!ioin 0X3F8", {"port": 0x3F8}),
    ("!ioin x3f8", {"port": 0x3F8}),
    ("!ioin 0n1016", {"port": 0x3F8}),
    ("!ioin n1016", {"port": 0x3F8}),
    ("!ioin 0N1016", {"port": 0x3F8}),
    ("!ioin 3`f8", {"port": 0x3F8}),
    ("!ioin cafe", {"port": 0xCAFE}),
    ("!ioin 0", {"port": 0}),
    ("!ioin ffff", {"port": 0xFFFF}),
    ("!ioin 0n65535", {"port": 0xFFFF}),
    ("!ioin 00000000000000000000000000003f8", {"port": 0x3F8}),
    ("!ioin 0n000000000000000000000000001016", {"port": 0x3F8}),
    # pid / core / buffer
    ("!ioin pid 1f4", {"pid": 0x1F4}),
    ("!ioin pid 0n500", {"pid": 500}),
    ("!ioin pid all", {"pid": None}),
    ("!ioin PID ALL", {"pid": None}),
    ("!ioin pid ffffffff", {"pid": 0xFFFFFFFF}),
    ("!ioin pid ffff`ffff", {"pid": 0xFFFFFFFF}),
    ("!ioin core 0n3", {"core": 3}),
    ("!ioin core 0", {"core": 0}),
    ("!ioin buffer 100", {"buffer": 0x100}),
    # stage / sc / imm
    ("!ioin stage pre", {}),
    ("!ioin stage post", {"stage": "post"}),
    ("!ioin STAGE All", {"stage": "all"}),
    ("!ioin sc on", {"short_circuit": True}),
    ("!ioin sc on stage pre", {"short_circuit": True}),
    ("!ioin sc off stage post", {"stage": "post"}),
    ("!ioin imm no", {"immediate": False}),
    ("!ioin imm YES", {}),
    # blocks
    ("!ioin condition { @rdx == 3f8 }", {"condition": "@rdx == 3f8"}),
    ('!ioin script {printf("%x", $context);}', {"script": 'printf("%x", $context);'}),
    ("!ioin script{x=1;}", {"script": "x=1;"}),
    (
        "!ioin script { if (a) { x = b; } else { x = c; } }",
        {"script": "if (a) { x = b; } else { x = c; }"},
    ),
    # code blocks stay text (condition and script blocks are compiled: tests/agent/script)
    ("!ioin code { a \\{ b }", {"code": "a { b"}),
    ("!ioin code { a \\} b }", {"code": "a } b"}),
    ("!ioin script { x = 1; // kept }", {"script": "x = 1; // kept"}),
    ("!ioin script { /* kept */ }", {"script": "/* kept */"}),
    ("!ioin script {\n  x = 1;\n  y = 2;\n}", {"script": "x = 1;\n  y = 2;"}),
    ("!ioin code { a\\b }", {"code": "a\\b"}),
    ("!ioin script { }", {}),
    ("!ioin code {90 90 90}", {"code": "90 90 90"}),
    ("!ioin output {a, b ,c}", {"output": ["a", "b", "c"]}),
    ("!ioin output {one}", {"output": ["one"]}),
    # ioin-fleet extensions
    ("!ioin break", {"break": True}),
    ("!ioin BREAK", {"break": True}),
    ("!ioin set ff", {"set_value": 0xFF}),
    ("!ioin set 0n255", {"set_value": 0xFF}),
    ("!ioin set ffffffff", {"set_value": 0xFFFFFFFF}),
    ("!ioin set 0", {"set_value": 0}),
    ("!ioin rate 0n100", {"rate": 100, "burst": 100}),
    ("!ioin rate 10 burst 20", {"rate": 0x10, "burst": 0x20}),
    ("!ioin burst 1 rate 0n5", {"rate": 5, "burst": 1}),
    ("!ioin rate 0", {}),
    # comments outside blocks
    ("!ioin 3f8 // the rest: pid zz", {"port": 0x3F8}),
    ("!ioin /* a */ 3f8 /* b */", {"port": 0x3F8}),
    ("!ioin 3f8/*x*/pid 2", {"port": 0x3F8, "pid": 2}),
    ("!ioin 3f8 // c\n pid 2", {"port": 0x3F8, "pid": 2}),
    # any order; the port may come anywhere
    ("!ioin core 1 3f8 pid 2", {"port": 0x3F8, "core": 1, "pid": 2}),
    ("!ioin\tpid\n2\r\n3f8", {"port": 0x3F8, "pid": 2}),
    # HyperDbg's own examples
    ("!ioin 0x3f8 code {90 90 90}", {"port": 0x3F8, "code": "90 90 90"}),
]


@pytest.mark.parametrize(("command", "fields"), VALID, ids=[c for c, _ in VALID])
def test_parse_valid(command: str, fields: dict[str, object]) -> None:
    got = spec_to_json(parse(command))
    want = DEFAULTS | fields
    assert {key: got[key] for key in want} == want


def test_command_is_kept_stripped() -> None:
    spec = parse("  !IOIN 0x3F8 // serial\n ")
    assert spec.command == "!IOIN 0x3F8 // serial"


def test_stage_is_explicit_pre_by_default() -> None:
    assert parse("!ioin").stage == hooks_pb2.STAGE_PRE


def test_absent_fields_are_absent() -> None:
    spec = parse("!ioin pid all")
    assert not any(spec.HasField(f) for f in ("port", "pid", "core", "buffer", "set_value"))


# -- errors -------------------------------------------------------------------------------------

ERRORS: list[tuple[str, str, str]] = [  # command, message, token
    # empty
    ("", "empty command", ""),
    ("  \n\t ", "empty command", ""),
    ("// only a comment", "empty command", ""),
    ("/* only */", "empty command", ""),
    # the command word
    ("foo 3f8", "unknown command 'foo' (expected !ioin, !ioout or !iout)", "foo"),
    ("!bp 3f8", "unknown command '!bp' (expected !ioin, !ioout or !iout)", "!bp"),
    ("!!ioin", "unknown command '!!ioin' (expected !ioin, !ioout or !iout)", "!!ioin"),
    ("{x} !ioin", "unknown command '{x}' (expected !ioin, !ioout or !iout)", "{x}"),
    ("3f8", "unknown command '3f8' (expected !ioin, !ioout or !iout)", "3f8"),
    # bare tokens
    ("!ioin 3f8 60", "unknown parameter '60'", "60"),
    ("!ioin bogus", "unknown parameter 'bogus'", "bogus"),
    ("!ioin 3f8 {x}", "unknown parameter '{x}'", "{x}"),
    ("!ioin 0x", "unknown parameter '0x'", "0x"),
    ("!ioin n", "unknown parameter 'n'", "n"),
    ("!ioin 0n3f8", "unknown parameter '0n3f8'", "0n3f8"),
    ("!ioin ``", "unknown parameter '``'", "``"),
    ("!ioin a/b", "unknown parameter 'a/b'", "a/b"),
    ("!ioin \uff13", "unknown parameter '\uff13'", "\uff13"),  # a full-width 3 is no number
    ("!ioin brea\u212a", "unknown parameter 'brea\u212a'", "brea\u212a"),  # Kelvin sign
    # port range (HyperDbg accepts these and never fires)
    ("!ioin 10000", "port '10000' is out of range 0..0xffff", "10000"),
    ("!ioin 0n65536", "port '0n65536' is out of range 0..0xffff", "0n65536"),
    ("!ioin 0n" + "9" * 5000, "port '0n" + "9" * 35 + "...' is out of range 0..0xffff", ""),
    # missing values
    ("!ioin pid", "err, please specify a value for 'pid'", "pid"),
    ("!ioin 3f8 CORE", "err, please specify a value for 'core'", "CORE"),
    ("!ioin buffer", "err, please specify a value for 'buffer'", "buffer"),
    ("!ioin imm", "err, please specify a value for 'imm'", "imm"),
    ("!ioin stage", "err, please specify a value for 'stage'", "stage"),
    ("!ioin sc", "err, please specify a value for 'sc'", "sc"),
    ("!ioin set", "err, please specify a value for 'set'", "set"),
    ("!ioin rate", "err, please specify a value for 'rate'", "rate"),
    ("!ioin rate 1 burst", "err, please specify a value for 'burst'", "burst"),
    ("!ioin script", "err, please specify a value for 'script'", "script"),
    ("!ioin condition // {x}", "err, please specify a value for 'condition'", "condition"),
    # bad numbers
    ("!ioin pid zz", "err, pid is invalid: 'zz'", "zz"),
    ("!ioin pid 100000000", "err, pid is invalid: '100000000'", "100000000"),
    ("!ioin pid core 1", "err, pid is invalid: 'core'", "core"),
    ("!ioin pid {1}", "err, pid is invalid: '{1}'", "{1}"),
    ("!ioin core all", "err, core id is invalid: 'all'", "all"),
    ("!ioin core 0n4294967296", "err, core id is invalid: '0n4294967296'", "0n4294967296"),
    ("!ioin buffer -1", "err, buffer size is invalid: '-1'", "-1"),
    ("!ioin set 1`0000`0000", "err, set value is invalid: '1`0000`0000'", "1`0000`0000"),
    ("!ioin rate fast", "err, rate is invalid: 'fast'", "fast"),
    ("!ioin rate 1 burst big", "err, burst is invalid: 'big'", "big"),
    # bad choices
    (
        "!ioin stage middle",
        "err, the specified execution mode 'middle' is invalid; choose 'pre', 'post' or 'all'",
        "middle",
    ),
    (
        "!ioin sc yes",
        "err, the specified short-circuiting state 'yes' is invalid; choose 'on' or 'off'",
        "yes",
    ),
    (
        "!ioin imm on",
        "err, the specified immediate messaging token 'on' is invalid; choose 'yes' or 'no'",
        "on",
    ),
    # combinations
    (
        "!ioin sc on stage post",
        "err, 'sc on' cannot be used with 'stage post' (a skipped instruction has no post)",
        "sc",
    ),
    (
        "!ioin stage all sc ON",
        "err, 'sc on' cannot be used with 'stage all' (a skipped instruction has no post)",
        "sc",
    ),
    ("!ioin burst 5", "err, 'burst' needs a non-zero 'rate'", "burst"),
    ("!ioin rate 0 burst 5", "err, 'burst' needs a non-zero 'rate'", "burst"),
    ("!ioin rate 5 burst 0", "err, burst is invalid: '0' (must be at least 1)", "burst"),
    # duplicates
    ("!ioin pid 1 pid 2", "duplicate parameter 'pid'", "pid"),
    ("!ioin pid all PID 2", "duplicate parameter 'PID'", "PID"),
    ("!ioin break break", "duplicate parameter 'break'", "break"),
    ("!ioin script {x=1;} Script {x=2;}", "duplicate parameter 'Script'", "Script"),
    ("!ioin condition {} condition {1}", "duplicate parameter 'condition'", "condition"),
    # blocks
    ("!ioin script x", "err, please specify a { ... } block for 'script', not 'x'", "x"),
    ("!ioin output a,b", "err, please specify a { ... } block for 'output', not 'a,b'", "a,b"),
    ("!ioin output {a,,b}", "err, empty name in output '{a,,b}'", "{a,,b}"),
    ("!ioin output {}", "err, empty name in output '{}'", "{}"),
    ("!ioin output { a, }", "err, empty name in output '{ a, }'", "{ a, }"),
    # braces and comments
    ("!ioin script { x", "unbalanced braces: '{' without a matching '}'", "{"),
    ("!ioin script { { x }", "unbalanced braces: '{' without a matching '}'", "{"),
    ("!ioin script { x \\}", "unbalanced braces: '{' without a matching '}'", "{"),
    ("!ioin }", "unbalanced braces: '}' without a matching '{'", "}"),
    ("!ioin script { x // } }", "unbalanced braces: '}' without a matching '{'", "}"),
    ("!ioin script {x=1;}zz", "unknown parameter 'zz'", "zz"),
    # HyperDbg's example condition of assembly bytes: no backend runs assembly, and blanks do
    # not join digits into one number (HyperDbg's scanner ends a number at a blank)
    (
        "!ioin 0x3f8 code {90 90 90} condition {90 90 90}",
        "condition { }: '90 90 90' is assembly bytes, which HyperDbg once ran as a condition; "
        "ioin-fleet runs HyperDbg's script language there (e.g. condition { @al == 90 })",
        "90",
    ),
    ("!ioin script {x}}", "unbalanced braces: '}' without a matching '{'", "}"),
    ("!ioin 3f8}", "unbalanced braces: '}' without a matching '{'", "}"),
    ("!ioin /* x", "unterminated comment: '/*' without '*/'", "/*"),
    ("!ioin 3f8/*", "unterminated comment: '/*' without '*/'", "/*"),
    # text protobuf cannot carry
    ("!ioin script {\ud800}", "invalid character '\\ud800' at offset 14", "\\ud800"),
]


@pytest.mark.parametrize(
    ("command", "message", "token"), ERRORS, ids=[c[:40] for c, _, _ in ERRORS]
)
def test_parse_error(command: str, message: str, token: str) -> None:
    with pytest.raises(HookSyntaxError) as caught:
        parse(command)
    assert str(caught.value) == message
    assert caught.value.message == message
    if token:  # "" marks a token too long to spell out here
        assert caught.value.token == token


def test_long_token_is_named_in_full_on_the_error() -> None:
    with pytest.raises(HookSyntaxError) as caught:
        parse("!ioin 0n" + "9" * 5000)
    assert caught.value.token == "0n" + "9" * 5000


@pytest.mark.parametrize("hook_id", ["Serial", "a/b", "", "-x", "x" * 65, "a+b", "a#"])
def test_invalid_hook_id(hook_id: str) -> None:
    with pytest.raises(HookSyntaxError) as caught:
        parse("!ioin 3f8", hook_id=hook_id)
    assert caught.value.token == hook_id
    assert str(caught.value).startswith(f"invalid hook id '{hook_id}'")


# -- canonical form and ids ---------------------------------------------------------------------

CANONICAL = [
    ("!ioin", "!ioin"),
    ("  IOIN  ", "!ioin"),
    ("!iout 60", "!ioout 60"),
    ("!IOIN 0x3F8 CORE 0n1 STAGE POST", "!ioin 3f8 core 1 stage post"),
    ("!ioin stage pre imm yes sc off pid all", "!ioin"),
    (
        "!ioin output {b, a} code {90} script {s=1;} condition {c} rate 0n16 set 0n10 break "
        "buffer 0n32 imm no sc on stage pre core 2 pid 1 0n1016",
        "!ioin 3f8 pid 1 core 2 sc on imm no buffer 20 break set a rate 10 "
        "condition { c } script { s=1; } code { 90 } output { b, a }",
    ),
    ("!ioin rate 0n10 burst 0n10", "!ioin rate a"),
    ("!ioin rate 0n10 burst 0n20", "!ioin rate a burst 14"),
    ("!ioin script { if (a) { x = b; } }", "!ioin script { if (a) { x = b; } }"),
    ("!ioin code { \\} \\{ }", "!ioin code { \\} \\{ }"),
    ("!ioin code { \\{ \\} }", "!ioin code { { } }"),
    ("!ioin code { a\\\\{ }", "!ioin code { a\\\\{ }"),
    ("!ioin code { x\\ }", "!ioin code { x\\ }"),
]


@pytest.mark.parametrize(("command", "expected"), CANONICAL, ids=[c for c, _ in CANONICAL])
def test_canonical(command: str, expected: str) -> None:
    spec = parse(command)
    assert canonical(spec) == expected
    again = parse(expected)
    again.command = spec.command
    assert again == spec


SAME_HOOK = [
    ("!ioin 0x3f8 core 1", "!IOIN 3F8 CORE 0n1"),
    ("!ioin 3f8", "ioin 0n1016 stage pre imm yes"),
    ("!iout 60 pid all", "!ioout x60"),
    ("!ioin rate 0n10", "!ioin rate a burst a"),
    ("!ioin script {x=1;}", "!ioin script {   x=1;   } // comment"),
    ("!ioin core 1 pid 2", "!ioin pid 2 core 1"),
]


@pytest.mark.parametrize(("one", "other"), SAME_HOOK)
def test_same_hook_same_id(one: str, other: str) -> None:
    assert parse(one).id == parse(other).id


DIFFERENT_HOOKS = ["!ioin", "!ioout", "!ioin 3f8", "!ioin 3f8 core 1", "!ioin 3f8 break"]


def test_different_hooks_different_ids() -> None:
    ids = {parse(command).id for command in DIFFERENT_HOOKS}
    assert len(ids) == len(DIFFERENT_HOOKS)


@pytest.mark.parametrize(
    ("command", "pattern"),
    [("!ioin 3f8", r"in-3f8-[0-9a-f]{8}"), ("!ioout", r"out-all-[0-9a-f]{8}")],
)
def test_derived_id_shape(command: str, pattern: str) -> None:
    hook_id = parse(command).id
    assert re.fullmatch(pattern, hook_id)
    assert check_id("hook id", hook_id) == hook_id


def test_given_id_is_used() -> None:
    assert parse("!ioin 3f8", hook_id="com1-reads").id == "com1-reads"


def test_canonical_refuses_a_spec_without_direction() -> None:
    with pytest.raises(ValueError, match="direction must be IN or OUT"):
        canonical(hooks_pb2.HookSpec(id="x"))


# -- JSON ---------------------------------------------------------------------------------------


def test_spec_to_json_shape() -> None:
    spec = parse("!ioout 3f8 pid 1 set ff output {a, b} rate 0n10", hook_id="h1")
    got = spec_to_json(spec)
    assert got == DEFAULTS | {
        "id": "h1",
        "direction": "out",
        "port": 0x3F8,
        "pid": 1,
        "output": ["a", "b"],
        "set_value": 0xFF,
        "rate": 10,
        "burst": 10,
        "command": "!ioout 3f8 pid 1 set ff output {a, b} rate 0n10",
        "canonical": "!ioout 3f8 pid 1 set ff rate a output { a, b }",
    }
    assert json.loads(json.dumps(got)) == got


def test_spec_to_json_of_unparsed_spec() -> None:
    got = spec_to_json(hooks_pb2.HookSpec(direction=hooks_pb2.DIRECTION_IN))
    assert got["stage"] == "pre"  # STAGE_UNSPECIFIED is HyperDbg's default
    assert got["canonical"] == "!ioin imm no"  # proto3's default for a bool is False
