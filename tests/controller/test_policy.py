"""Policy files are refused whole before any host, naming file, policy and key; plans are pure."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.hooks import lang
from agent.wire import hooks_pb2
from controller.errors import PlanConflict, PolicyError
from controller.plan import Action, Owner, plan_host
from controller.policy import load_policies
from tests.controller.conftest import Cli
from tests.harness import free_port

GOOD = """
[[policy]]
name = "serial"
selector = "role=web"
hooks = ["!ioin 0x3f8", "!ioout 0x3f8 rate 100"]

[[policy]]
name = "rtc"
selector = "dc=fra1"
hooks = ["!ioin 0x71 core 1", { id = "rtc-index", command = "!ioout 0x70" }]
"""
OWNER = Owner("ops@ctl", 1)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def test_a_good_file_parses_every_hook(tmp_path: Path) -> None:
    f = load_policies(write(tmp_path, GOOD))
    assert [p.name for p in f.policies] == ["serial", "rtc"]
    assert [h.command for h in f.policies[0].hooks] == ["!ioin 0x3f8", "!ioout 0x3f8 rate 100"]
    assert f.policies[1].hooks[1].id == "rtc-index"
    assert [p.name for p in f.for_labels({"role": "web", "dc": "fra1"})] == ["serial", "rtc"]
    assert [p.name for p in f.for_labels({"role": "db"})] == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[policy]\n", "policy.toml: not valid TOML: "),
        ("[[policy]]\nname='a'\nhooks=[]\n[x]\n", "policy.toml: x: unknown key"),
        ("[[policy]]\nname='a'\nhookz=[]\n", "policy.toml: policy 'a': hookz: unknown key"),
        ("[[policy]]\nhooks=[]\n", "policy.toml: policy '#1': name: missing"),
        ("[[policy]]\nname='A B'\nhooks=[]\n", "policy.toml: policy 'A B': name: invalid"),
        (
            "[[policy]]\nname='a'\nhooks=['!ioin 0x3f8', '!ioin 0x10000']\n",
            "policy.toml: policy 'a': hooks[1]: invalid hook: port '0x10000' is out of range",
        ),
        (
            "[[policy]]\nname='a'\nselector='role=web,'\nhooks=[]\n",
            "policy.toml: policy 'a': selector: selector 'role=web,': end (at 9)",
        ),
        ("[[policy]]\nname='a'\nhooks='!ioin 1'\n", "policy.toml: policy 'a': hooks: missing"),
        (
            "[[policy]]\nname='a'\nhooks=[{command='!ioin 1', bogus=1}]\n",
            "policy.toml: policy 'a': hooks[0].bogus: unknown key",
        ),
        (
            "[[policy]]\nname='a'\nhooks=['!ioin 1', '!IOIN 0x1']\n",
            "policy.toml: policy 'a': hooks[1]: hook id 'in-1-",
        ),
        (  # one hook id from two policies for the same agents: a conflict on every one of them
            "[[policy]]\nname='a'\nselector='role=web'\nhooks=['!ioin 1']\n"
            "[[policy]]\nname='b'\nselector='role==web'\nhooks=['!IOIN 0x1']\n",
            "policy.toml: policy 'b': hooks: policy 'a' sets hook 'in-1-",
        ),
        (  # a misspelt name is named, not reported missing
            "[[policy]]\nnme='a'\nhooks=[]\n",
            "policy.toml: policy '#1': nme: unknown key",
        ),
        (
            "[[policy]]\nname='a'\nhooks=[]\n[[policy]]\nname='a'\nhooks=[]\n",
            "policy.toml: policy 'a': name: two policies have this name",
        ),
    ],
)
def test_refusals_name_file_policy_and_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_policies(write(tmp_path, text))
    assert str(info.value).startswith(str(tmp_path / message)), str(info.value)


def test_apply_refuses_a_bad_file_before_contacting_any_host(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, "[[policy]]\nname='a'\nhooks=['!ioin 0x3f8 colour red']\n")
    dead = f"127.0.0.1:{free_port()}"
    for argv in (["apply", str(path)], ["diff", str(path)], ["apply", "--dry-run", str(path)]):
        run = cli(*argv, "--hosts", dead)  # no security chosen, dead host: the file comes first
        assert run.code == 1
        assert run.out == ""
        assert run.err == f"ioinctl: {path}: policy 'a': hooks[0]: invalid hook: " + (
            "unknown parameter 'colour'\n"
        ), run.err


def hook(command: str, *, policy: str = "", enabled: bool = True) -> hooks_pb2.Hook:
    spec = lang.parse(command)
    if policy:
        spec.owner.policy, spec.owner.applied_by, spec.owner.applied_ns = policy, "x@y", 9
    return hooks_pb2.Hook(spec=spec, enabled=enabled)


def test_plan_creates_replaces_removes_and_leaves_hand_pushed_alone(tmp_path: Path) -> None:
    f = load_policies(write(tmp_path, GOOD))
    web = {"role": "web"}
    first = plan_host(f, web, [hook("!ioin 0x80")], OWNER)
    assert [(c.action, c.command) for c in first.changes] == [
        (Action.CREATE, "!ioin 0x3f8"),
        (Action.CREATE, "!ioout 0x3f8 rate 100"),
    ]
    assert all(c.spec is not None and c.spec.owner.policy == "serial" for c in first.changes)
    have = [hook("!ioin 0x80"), hook("!ioin 0x3f8", policy="serial")]
    have += [hook("!ioout 0x3f8 rate 100", policy="serial", enabled=False)]
    have += [hook("!ioin 0x71 core 1", policy="rtc")]
    again = plan_host(f, web, have, OWNER)
    assert [(c.action, c.hook_id) for c in again.changes] == [
        (Action.REPLACE, have[2].spec.id),  # disabled by hand: apply enables it again
        (Action.REMOVE, have[3].spec.id),  # rtc no longer selects this agent
    ]
    assert again.unchanged == 1  # who applied and when do not count as a change
    respelt = [hook("!ioin   3f8", policy="serial"), hook("!ioout 3f8 rate 0n256", policy="serial")]
    assert respelt[0].spec.id == have[1].spec.id
    same = plan_host(f, web, respelt, OWNER)
    assert (same.changes, same.unchanged) == ((), 2)  # only the spelling differs


def test_plan_conflicts(tmp_path: Path) -> None:
    f = load_policies(write(tmp_path, GOOD))
    with pytest.raises(PlanConflict, match="a hook pushed by hand has this id"):
        plan_host(f, {"role": "web"}, [hook("!ioin 0x3f8")], OWNER)
    both = write(tmp_path, GOOD + "[[policy]]\nname='again'\nhooks=['!ioin 0x3f8']\n")
    with pytest.raises(PlanConflict, match="policy 'serial' sets it too"):
        plan_host(load_policies(both), {"role": "web"}, [], OWNER)
