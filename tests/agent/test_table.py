from __future__ import annotations

import pytest

from agent.errors import HookNotFound
from agent.hooks.table import HookRule, HookTable
from agent.model import Direction
from agent.wire import hooks_pb2

IN, OUT = Direction.IN, Direction.OUT


def spec(hook_id: str, direction: int = 1, **kw: int) -> hooks_pb2.HookSpec:
    return hooks_pb2.HookSpec(id=hook_id, direction=direction, command=hook_id, **kw)  # type: ignore[arg-type]


def ids(rules: list[HookRule]) -> list[str]:
    return [r.id for r in rules]


def test_match_by_direction_port_pid_core_newest_first() -> None:
    t = HookTable()
    t.set(spec("serial", port=0x3F8))
    t.set(spec("all-core1", core=1))
    t.set(spec("out-serial", direction=2, port=0x3F8))
    t.set(spec("vm4", port=0x3F8, pid=4))
    assert ids(t.match(IN, 0x3F8, 1, 0)) == ["serial"]
    assert ids(t.match(IN, 0x3F8, 4, 1)) == ["vm4", "all-core1", "serial"]
    assert ids(t.match(IN, 0x70, 4, 1)) == ["all-core1"]
    assert ids(t.match(IN, 0x70, 4, 0)) == []
    assert ids(t.match(OUT, 0x3F8, 4, 1)) == ["out-serial"]


def test_disabled_hooks_do_not_match_and_hooked_ports_follow() -> None:
    t = HookTable()
    t.set(spec("a", port=0x70))
    t.set(spec("b", port=0x71), enabled=False)
    assert t.hooked_ports(IN) == frozenset({0x70})
    t.set_enabled("b", True)
    assert t.hooked_ports(IN) == frozenset({0x70, 0x71})
    t.set(spec("c"))
    assert t.hooked_ports(IN) is None  # an all-ports hook
    assert t.hooked_ports(OUT) == frozenset()


def test_set_is_idempotent_and_replaces_by_id() -> None:
    t = HookTable()
    _, created = t.set(spec("a", port=1))
    version = t.version
    _, again = t.set(spec("a", port=1))
    assert created
    assert not again
    assert t.version == version  # identical: nothing rebuilt
    t.set(spec("a", port=2))
    assert ids(t.match(IN, 2, 0, 0)) == ["a"]
    assert t.match(IN, 1, 0, 0) == []
    assert len(t) == 1


def test_unknown_ids_raise_hook_not_found() -> None:
    t = HookTable()
    with pytest.raises(HookNotFound) as info:
        t.remove("nope")
    assert info.value.hook_id == "nope"
    with pytest.raises(HookNotFound):
        t.set_enabled("nope", True)


def test_invalid_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="A/B"):
        HookTable().set(spec("A/B"))


def test_hits_are_counted() -> None:
    t = HookTable()
    t.set(spec("a"))
    t.count_hits("a", 5)
    t.count_hits("gone", 1)  # a hook removed while its batch was in flight
    assert t.get("a").hits == 5
