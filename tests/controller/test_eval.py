"""``ioinctl eval`` (HyperDbg's ``?``) and the script part of ``ioinctl explain``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.controller.conftest import Cli


def test_eval_prints_output_then_changes(cli: Cli) -> None:
    script = 'printf("port %x al %x\\n", $context, @al); @al = 41; .hits = .hits + 1; print(@rax);'
    run = cli("eval", script, "--reg", "rax=0x1122", "--pseudo", "$context=3f8")
    assert run.code == 0, run.err
    assert run.out.splitlines() == ["port 3f8 al 22", "1141", "@rax = 0x1141", ".hits = 0x1"]


def test_eval_reg_parts_merge_and_unset_are_zero(cli: Cli) -> None:
    run = cli("eval", 'printf("%llx %x\\n", @rax, @rbx);', "--reg", "eax=0n10", "--reg", "ah=ff")
    assert run.out.splitlines() == ["ff0a 0"]


def test_eval_json(cli: Cli) -> None:
    run = cli(
        "eval", "event_sc(1); @eax = 1; print(2);", "--reg", "rax=ffffffff00000000", "-o", "json"
    )
    doc = json.loads(run.out)
    assert doc["output"] == ["2"]
    assert doc["registers"] == {"rax": 0xFFFFFFFF00000001}
    assert doc["short_circuit"] is True
    assert doc["steps"] == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["x = 1 +;"], "got ';' at line 1, column 8"),
        (["x = y;"], "unknown variable 'y'"),
        (["x = poi(@rsp);"], "lacks capability 'memory' (script: poi() at line 1, column 5)"),
        (["x = 1 / 0;"], "script aborted: division by zero"),
        (["while (1) { }", "--budget", "50"], "step budget of 50 exhausted"),
        (["x = 1;", "--reg", "rzz=1"], "--reg 'rzz=1': expected NAME=VALUE with a known name"),
        (["x = 1;", "--pseudo", "core=zz"], "'zz' is not a number"),
    ],
)
def test_eval_refusals_exit_2_with_the_error_on_stderr(
    cli: Cli, args: list[str], message: str
) -> None:
    run = cli("eval", *args)
    assert run.code == 2
    assert message in run.err
    assert run.out == ""


def test_eval_prints_the_output_before_an_abort(cli: Cli) -> None:
    run = cli("eval", 'printf("before\\n"); x = 0; y = 1 / x; printf("after\\n");')
    assert (run.code, run.out) == (2, "before\n")
    assert run.err.strip() == "ioinctl: script aborted: division by zero (after 3 steps)"


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_eval_json_of_an_abort_has_the_output_and_the_error(cli: Cli, fmt: str) -> None:
    run = cli("eval", 'printf("before\\n"); x = 0; y = 1 / x;', "-o", fmt)
    assert run.code == 2
    assert "script aborted: division by zero" in run.err
    assert (len(run.out.splitlines()) == 1) == (fmt == "jsonl")  # json is indented
    doc = json.loads(run.out)
    assert (doc["ok"], doc["output"], doc["steps"]) == (False, ["before"], 3)
    assert doc["error"] == {
        "kind": "aborted",
        "message": "script aborted: division by zero (after 3 steps)",
        "token": "",
        "line": None,
        "column": None,
    }


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_eval_json_of_a_refused_script_names_the_token(cli: Cli, fmt: str) -> None:
    run = cli("eval", "x = 1;\n  y = 1 +;", "-o", fmt)
    assert run.code == 2
    assert "expected a value, got ';' at line 2, column 10" in run.err
    doc = json.loads(run.out)
    assert doc["ok"] is False
    assert doc["error"] == {
        "kind": "refused",
        "message": "expected a value, got ';' at line 2, column 10",
        "token": ";",
        "line": 2,
        "column": 10,
    }


def test_eval_jsonl_is_the_one_result_on_one_line(cli: Cli) -> None:
    run = cli("eval", "@eax = 1; print(2);", "-o", "jsonl")
    assert run.code == 0, run.err
    assert run.out.count("\n") == 1
    doc = json.loads(run.out)
    assert (doc["ok"], doc["error"], doc["output"], doc["registers"]) == (
        True,
        None,
        ["2"],
        {"rax": 1},
    )


def test_explain_shows_the_parsed_script(cli: Cli) -> None:
    hook = "!ioin 3f8 condition { $context == 3f8 && @al != 0 } "
    hook += "script { if (@al == 41) { @al = 42; } }"
    doc = json.loads(cli("explain", hook).out)
    assert doc["parsed"] == {
        "condition": "(($context == 0x3f8) && (@al != 0x0))",
        "script": "if ((@al == 0x41)) {\n    @al = 0x42;\n}",
    }


def test_explain_refuses_a_bad_script_naming_the_token(cli: Cli) -> None:
    run = cli("explain", "!ioin 3f8 script { @al = nope; }")
    assert run.code == 2
    assert "script { }: unknown variable 'nope' (never assigned) at line 1, column 8" in run.err


def test_explain_counts_a_blocks_positions_from_its_brace_as_eval_does(cli: Cli) -> None:
    """Line 1, column 1 is the first character after ``{``: the block is not trimmed first."""
    run = cli("explain", "!ioin 3f8 script {\n\n\n    x = ;\n}")
    assert run.code == 2
    assert "script { }: expected a value, got ';' at line 4, column 9" in run.err
    same = cli("eval", "\n\n\n    x = ;\n")
    assert "expected a value, got ';' at line 4, column 9" in same.err
    run = cli("explain", "!ioin 3f8 condition {   @al == }")
    assert "condition { }: expected a value, got 'end of script' at line 1, column 11" in run.err


def test_eval_is_the_installed_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "controller.cli", "eval", "print(0n255);"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert out.stdout == "ff\n"
