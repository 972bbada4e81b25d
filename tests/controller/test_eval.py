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
    assert "script { }: unknown variable 'nope' (never assigned) at line 1, column 7" in run.err


def test_eval_is_the_installed_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "controller.cli", "eval", "print(0n255);"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert out.stdout == "ff\n"
