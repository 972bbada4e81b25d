"""The role tables themselves: what changes the guest, and what a method missing from a table
needs (the end-to-end matrix is in test_roles.py)."""

from __future__ import annotations

from agent.hooks.lang import parse
from agent.identity import Role
from agent.rpc.policy import agent_policy, guest_effects
from agent.rpc.roles import table_policy
from agent.wire import agent_pb2, hooks_pb2


def test_guest_effects_name_what_changes_the_guest() -> None:
    assert guest_effects(parse("!ioin 0x3f8 pid 2 core 1 stage post rate 10")) == []
    assert guest_effects(parse("!ioin 0x70 break")) == ["break"]
    assert guest_effects(parse("!ioout 0x80 set 1 sc on")) == ["set", "sc on"]
    script = "!ioin 0x60 script { @rax = 1; pause(); }"
    assert guest_effects(parse(script)) == [
        "script: writing @rax at line 1, column 1",
        "script: pause() at line 1, column 11",
    ]
    assert guest_effects(parse('!ioin 0x60 script { x = poi(@rsi); printf("%x", x); }')) == [
        "script: poi() at line 1, column 5"  # reading guest memory reaches into the guest too
    ]
    assert (
        guest_effects(parse('!ioin 0x60 condition { @rax == 1 } script { printf("%x", @rax); }'))
        == []
    )


def test_a_method_missing_from_a_table_needs_admin_and_is_audited() -> None:
    policy = table_policy({"/s.S/Read": Role.VIEWER}, {"/s.S/Write": Role.OPERATOR})
    read, write, other = (policy(f"/s.S/{m}", None) for m in ("Read", "Write", "New"))
    assert (read.role, read.mutating) == (Role.VIEWER, False)
    assert (write.role, write.mutating) == (Role.OPERATOR, True)
    assert (other.role, other.mutating, other.what) == (
        Role.ADMIN,
        True,
        "/s.S/New (not in the role table)",
    )
    agent = agent_policy(lambda _: None)
    assert agent("/ioin.v1.Agent/Unknown", None).role is Role.ADMIN


def test_set_hook_is_judged_by_the_hook_pushed_and_the_hook_replaced() -> None:
    held = {"brk": parse("!ioin 0x70 break", hook_id="brk")}
    policy = agent_policy(held.get)
    request = agent_pb2.SetHookRequest(command="!ioin 0x70", spec=hooks_pb2.HookSpec(id="brk"))
    need = policy("/ioin.v1.Agent/SetHook", request)
    assert (need.role, need.what, need.hook_id) == (
        Role.ADMIN,
        "SetHook over a hook with break",
        "brk",
    )
    assert need.command == "!ioin 70"
    fresh = policy("/ioin.v1.Agent/SetHook", agent_pb2.SetHookRequest(command="!ioin 0x70"))
    assert (fresh.role, fresh.what) == (Role.OPERATOR, "SetHook")
    broken = policy("/ioin.v1.Agent/SetHook", agent_pb2.SetHookRequest(command="!ioin zz"))
    assert broken.role is Role.OPERATOR  # refused later with INVALID_ARGUMENT naming 'zz'


def test_a_request_that_did_not_decode_is_judged_by_its_method() -> None:
    """The error interceptor hands on undecodable bytes as a placeholder (it answers them with
    INVALID_ARGUMENT); the policy still names the least role the method needs."""
    policy = agent_policy(lambda _: None)
    for method in ("SetHook", "RemoveHook", "EnableHook", "DisableHook"):
        need = policy(f"/ioin.v1.Agent/{method}", object())
        assert (need.role, need.what, need.mutating) == (Role.OPERATOR, method, True)
