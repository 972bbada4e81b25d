"""The hook service and the state file, without processes: one door, one validator, specs kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import CapabilityError, HookSyntaxError
from agent.hooks.lang import parse
from agent.hooks.service import HookService, disagreement, resolve
from agent.hooks.table import HookTable
from agent.model import Capability
from agent.state import HookStore, StoredHook
from agent.wire import hooks_pb2

EVERYTHING = frozenset(Capability)


def service(
    tmp_path: Path, caps: frozenset[Capability] = EVERYTHING
) -> tuple[HookService, list[int]]:
    changes: list[int] = []
    svc = HookService(
        HookTable(),
        HookStore(tmp_path),
        capabilities=caps,
        backend_name="test",
        changed=lambda: changes.append(1),
    )
    return svc, changes


def test_a_request_with_neither_command_nor_spec_is_refused_naming_command() -> None:
    with pytest.raises(HookSyntaxError) as info:
        resolve("", None)
    assert info.value.token == "command"


def test_a_spec_naming_another_command_disagrees_on_the_field_that_differs() -> None:
    carrier = hooks_pb2.HookSpec(id="x", command="!ioout 70")
    with pytest.raises(HookSyntaxError) as info:
        resolve("!ioin 70", carrier)
    assert info.value.token == "direction"
    # the same hook written differently is the same hook
    assert resolve("!IOOUT 0x70", carrier) == parse("!IOOUT 0x70", hook_id="x")


def test_a_refusal_quotes_a_long_value_shortened() -> None:
    # a long (valid: condition blocks are compiled) condition the command does not have
    spec = parse("!ioin 3f8 condition { " + "$context == 1 || " * 20 + "1 }")
    with pytest.raises(HookSyntaxError) as info:
        resolve("!ioin 3f8", spec, max_command=200_000)
    assert info.value.token == "condition"
    assert len(str(info.value)) < 200


def test_a_bare_spec_is_normalized_as_the_parser_writes_it(tmp_path: Path) -> None:
    svc, changes = service(tmp_path)
    spec = hooks_pb2.HookSpec(id="rtc", direction=hooks_pb2.DIRECTION_IN, port=0x70, rate=7)
    hook, created, _ = svc.set(spec=spec)
    assert created
    assert (hook.spec.stage, hook.spec.burst) == (hooks_pb2.STAGE_PRE, 7)
    assert disagreement(parse("!ioin 70 rate 7 imm no", hook_id="rtc"), hook.spec) is None
    assert changes == [1]


def test_capabilities_are_checked_at_the_one_door(tmp_path: Path) -> None:
    svc, _ = service(tmp_path, frozenset({Capability.IN, Capability.OUT}))
    with pytest.raises(CapabilityError) as info:
        svc.set(command="!ioin 3f8 break")
    assert (info.value.capability, info.value.field) == (Capability.BREAK, "break")
    assert len(svc.table) == 0


def test_saved_specs_come_back_and_one_breaking_the_rules_is_left_out(tmp_path: Path) -> None:
    svc, _ = service(tmp_path)
    svc.set(spec=hooks_pb2.HookSpec(id="bare", direction=hooks_pb2.DIRECTION_OUT, set_value=5))
    svc.set(command="!ioin 0x3f8 core 1", enabled=False)
    # a hand-made (or older, laxer) row: sc on with stage post is not a hook
    bad = hooks_pb2.HookSpec(id="bad", direction=hooks_pb2.DIRECTION_IN, short_circuit=True)
    bad.stage = hooks_pb2.STAGE_POST
    HookStore(tmp_path).put(StoredHook(bad, True))
    again, changes = service(tmp_path)
    again.restore(["!ioout 0x80", "!ioin 3f8 core 1 sc on stage post"])
    assert [(h.spec, h.enabled) for h in again.hooks()] == [
        (parse("!ioout 0x80"), True),
        *[(h.spec, h.enabled) for h in svc.hooks()],
    ]
    assert changes == [1]


def test_the_saved_hook_wins_over_the_config_on_the_same_id(tmp_path: Path) -> None:
    HookStore(tmp_path).put(StoredHook(parse("!ioin 70 rate 5"), False))
    svc, _ = service(tmp_path)
    svc.restore(["!ioin 70 rate 5 burst 5"])  # the same hook, so the same derived id
    [hook] = svc.hooks()
    assert (hook.spec.command, hook.enabled) == ("!ioin 70 rate 5", False)


def test_an_unreadable_state_file_is_set_aside(tmp_path: Path) -> None:
    (tmp_path / "hooks.db").write_bytes(b"not a database" * 100)
    assert HookStore(tmp_path).load() == []
    assert (tmp_path / "hooks.db.corrupt").exists()


def test_an_unreadable_old_state_file_is_not_imported(tmp_path: Path) -> None:
    (tmp_path / "hooks.json").write_text('{"format": 2, "hooks": {}}')
    assert HookStore(tmp_path).load() == []


def test_the_store_writes_one_row_per_change_and_keeps_the_set_order(tmp_path: Path) -> None:
    store = HookStore(tmp_path)
    a, b = parse("!ioin 70", hook_id="a"), parse("!ioin 71", hook_id="b")
    store.put_many([StoredHook(a, True), StoredHook(b, True)])
    store.put(StoredHook(a, False))  # only the flag: keeps its place
    assert [(h.spec.id, h.enabled) for h in store.load()] == [("a", False), ("b", True)]
    store.put(StoredHook(parse("!ioin 72", hook_id="a"), True))  # a new spec: now the newest
    store.delete("b")
    store.close()
    assert [(h.spec.id, h.spec.port) for h in HookStore(tmp_path).load()] == [("a", 0x72)]
