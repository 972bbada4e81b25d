"""The command line: explain, local parsing before any host, usage errors → exit 1, rendering."""

from __future__ import annotations

import json

import pytest

from agent.hooks import lang
from agent.wire import agent_pb2, hooks_pb2
from controller import views
from controller.client import HostResult
from controller.errors import AgentUnreachable, RemoteError
from controller.inventory import Host
from controller.render import Output, Report
from tests.controller.conftest import Cli
from tests.harness import free_port


def test_explain_prints_the_parsed_hook(cli: Cli) -> None:
    run = cli("explain", "!ioin 0x3f8 core 1")
    assert run.code == 0, run.err
    expected = lang.spec_to_json(lang.parse("!ioin 0x3f8 core 1")) | {"parsed": {}}
    assert json.loads(run.out) == expected
    assert run.err == ""


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("!ioin 10000", "port '10000' is out of range"),
        ("!ioin pid", "please specify a value for 'pid'"),
        ("!ioout 70 bogus", "unknown parameter 'bogus'"),
        ("!nope", "nope"),
    ],
)
def test_explain_refusal_goes_to_stderr_with_exit_2(cli: Cli, command: str, message: str) -> None:
    run = cli("explain", command)
    assert run.code == 2
    assert run.out == ""
    assert run.err.startswith("ioinctl: invalid hook: ")
    assert message in run.err
    assert run.err.count("\n") == 1


def test_push_parses_locally_before_contacting_any_host(cli: Cli) -> None:
    # No security choice and a dead host: the syntax error still comes first.
    run = cli("push", "!ioin 0x10000", "--hosts", f"127.0.0.1:{free_port()}")
    assert run.code == 1
    assert run.err == "ioinctl: invalid hook: port '0x10000' is out of range 0..0xffff\n"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["push"],
        ["status", "--bogus"],
        ["hooks"],
        ["hooks", "rm"],
        ["status", "-o", "yaml", "--hosts", "h:1", "--insecure"],
        ["status", "--insecure"],
        ["status", "--hosts", "h:1", "--inventory", "x.toml", "--insecure"],
        ["status", "--hosts", "h", "--insecure"],
        ["status", "--hosts", "h:1", "--insecure", "--timeout", "0"],
        ["watch", "--port", "0x10000"],
        ["watch", "--host", "A/B"],
        ["resume", "not-an-address", "b1", "--insecure"],
        ["vm", "start", "--name", "v", "--insecure", "--hosts", "h:1"],
    ],
)
def test_bad_usage_exits_1(cli: Cli, argv: list[str]) -> None:
    run = cli(*argv)
    assert run.code == 1, run
    assert run.out == "" or "Usage" in run.out


def test_help_exits_0(cli: Cli) -> None:
    run = cli("--help")
    assert run.code == 0
    for command in ("push", "explain", "hooks", "status", "watch", "resume", "vm"):
        assert command in run.out


def test_all_hosts_unreachable_exits_1_and_names_each(cli: Cli) -> None:
    dead = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    run = cli("hooks", "list", "--hosts", ",".join(dead), "--insecure", "-o", "json")
    assert run.code == 1
    doc = json.loads(run.out)
    assert [d["address"] for d in doc["hosts"]] == dead
    assert all(d["error"]["kind"] == "refused" for d in doc["hosts"])
    for address in dead:
        assert f"ioinctl: {address}: unreachable: " in run.err
    assert doc["summary"]["failed"] == 2
    assert "hooks list: 2 hosts, 0 ok, 2 failed, " in run.err


def _results() -> list[HostResult[agent_pb2.SetHookResponse]]:
    spec = lang.parse("!ioin 0x3f8")
    hook = hooks_pb2.Hook(spec=spec, enabled=True, hits=3, created_ns=7)
    return [
        HostResult(
            Host("a", "10.0.0.1:1"), value=agent_pb2.SetHookResponse(hook=hook, created=True)
        ),
        HostResult(
            Host("b", "10.0.0.2:1"), error=AgentUnreachable("b", "10.0.0.2:1", "refused", "refused")
        ),
        HostResult(
            Host("c", "10.0.0.3:1"),
            error=RemoteError("c", "INVALID_ARGUMENT", "no [pid]\x1b[2J\x00"),
        ),
    ]


def test_push_json_has_a_summary_and_one_object_per_host(
    capsys: pytest.CaptureFixture[str],
) -> None:
    Report("push", views.PUSH, Output.JSON).finish(_results(), 1.5)
    out, err = capsys.readouterr()
    whole = json.loads(out)
    assert whole["summary"] == {
        "command": "push",
        "hosts": 3,
        "ok": 1,
        "outcomes": {"created": 1},
        "failed": 2,
        "not_attempted": 0,
        "elapsed_s": 1.5,
    }
    assert err.splitlines()[-1] == "push: 3 hosts, 1 ok (1 created), 2 failed, 1.50 s"
    doc = whole["hosts"]
    assert [d["host"] for d in doc] == ["a", "b", "c"]
    assert [d["state"] for d in doc] == ["ok", "failed", "failed"]
    assert doc[0]["ok"] is True
    assert doc[0]["created"] is True
    assert doc[0]["hook"]["spec"] == lang.spec_to_json(lang.parse("!ioin 0x3f8"))
    assert doc[0]["hook"]["hits"] == 3
    assert doc[1]["error"] == {
        "kind": "refused",
        "code": None,
        "message": "b (10.0.0.2:1): unreachable: refused",
    }
    assert doc[2]["error"]["code"] == "INVALID_ARGUMENT"
    assert "hook" not in doc[1]


def _rows(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("│")]


def test_push_table_lists_failures_first_then_groups(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    Report("push", views.PUSH, Output.TABLE).finish(_results(), 0.25)
    out, err = capsys.readouterr()
    rows = _rows(out)
    assert [r.split("│")[1].strip() for r in rows] == ["b", "c", "a"]
    assert "refused: refused" in rows[0]
    assert "INVALID_ARGUMENT: no [pid]?[2J?" in rows[1]  # control bytes cleaned; no markup
    assert "created" in rows[2]
    assert out.splitlines()[-1] == "push: 3 hosts, 1 ok (1 created), 2 failed, 0.25 s"
    assert err.splitlines() == [
        "ioinctl: b (10.0.0.2:1): unreachable: refused",
        "ioinctl: c: INVALID_ARGUMENT: no [pid]?[2J?",
    ]


def test_identical_results_are_grouped_and_wide_shows_every_row(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    hook = hooks_pb2.Hook(spec=lang.parse("!ioin 0x3f8"), enabled=True)
    same = agent_pb2.SetHookResponse(hook=hook, unchanged=True)
    results = [HostResult(Host(f"h{i}", f"10.0.0.{i}:1"), value=same) for i in range(50)]
    Report("push", views.PUSH, Output.TABLE).finish(results, 1.0)
    out = capsys.readouterr().out
    [row] = _rows(out)
    assert "50 hosts (h0, h1, h2, …)" in row
    assert "unchanged" in row
    assert out.splitlines()[-1] == "push: 50 hosts, 50 ok (50 unchanged), 0 failed, 1.00 s"
    Report("push", views.PUSH, Output.TABLE, wide=True).finish(results, 1.0)
    assert len(_rows(capsys.readouterr().out)) == 50


def test_jsonl_streams_one_object_per_result(capsys: pytest.CaptureFixture[str]) -> None:
    report = Report("push", views.PUSH, Output.JSONL)
    results = _results()
    report.on_result(results[1])
    assert json.loads(capsys.readouterr().out)["host"] == "b"  # printed as it arrives
    report.on_result(results[0])
    report.on_result(results[2])
    report.finish(results, 0.5)
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [d["host"] for d in lines] == ["a", "c"]
    assert lines[0]["hook"]["id"] == results[0].value.hook.spec.id  # type: ignore[union-attr]
    assert err.splitlines()[-1] == "push: 3 hosts, 1 ok (1 created), 2 failed, 0.50 s"


def test_status_view() -> None:
    status = agent_pb2.Status(
        host="h1", version="0.1", backend="sim", capabilities=["in", "out"], broker_connected=True
    )
    status.counters.add(name="events", value=5)
    status.labels.update({"role": "web", "dc": "fra1"})
    assert views.STATUS.rows(status) == [["h1", "0.1", "sim", 0, True, "dc=fra1,role=web"]]
    doc = views.STATUS.fields(status)
    assert doc["counters"] == {"events": 5}
    assert doc["broker_connected"] is True
    assert doc["labels"] == {"role": "web", "dc": "fra1"}
    detail = dict(views.status_detail(status))
    assert detail["capabilities"] == "in, out"
    assert detail["counter events"] == "5"


def test_environment_chooses_plain_grpc(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOIN_INSECURE", "1")
    dead = f"127.0.0.1:{free_port()}"
    run = cli("status", "--hosts", dead)
    assert run.code == 1
    assert run.err.startswith(f"ioinctl: {dead}: unreachable: ")


def test_vm_views() -> None:
    vm = agent_pb2.VmInfo(id=3, name="bios", state="running", vcpus=1, exits=99)
    listed = agent_pb2.ListVmsResponse(vms=[vm])
    assert views.VMS.rows(listed) == [[3, "bios", "running", 1, 99, ""]]
    assert views.VMS.fields(listed)["vms"][0] == {
        "id": 3,
        "name": "bios",
        "state": "running",
        "vcpus": 1,
        "reason": "",
        "exits": 99,
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["push", "!ioin 0x3f8", "--hosts", "127.0.0.1:1", "-l", "role=\x1b[31mx"],
        ["push", "!ioin 0x3f8", "--hosts", "127.0.0.1:1\x1b[2J"],
        ["explain", "!ioin 0x3f8 \x1b[2J"],
    ],
)
def test_an_escape_sequence_in_what_is_refused_never_reaches_the_terminal(
    cli: Cli, argv: list[str]
) -> None:
    run = cli(*argv)
    assert run.code != 0
    assert "\x1b" not in run.err
    assert "\\x1b" in run.err  # shown, so the user sees what was wrong


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--batch", "\u00b2"], "--batch: '\u00b2' is not N or N%"),
        (["--max-fail", "\u00b2%"], "--max-fail: '\u00b2%' is not N or N%"),
        (["--timeout", "nan"], "--timeout must be a positive number of seconds, got nan"),
        (["--timeout", "inf"], "--timeout must be a positive number of seconds, got inf"),
        (["--deadline", "nan"], "--deadline must be a positive number of seconds, got nan"),
    ],
)
def test_rollout_and_deadline_flags_are_checked(cli: Cli, flags: list[str], message: str) -> None:
    run = cli("push", "!ioin 0x3f8", "--hosts", "127.0.0.1:1", "--insecure", *flags)
    assert run.code == 1
    assert message in run.err
