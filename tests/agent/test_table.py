from __future__ import annotations

import statistics
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import HookLimitError, HookNotFound
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


def test_a_full_table_refuses_one_more_hook_but_still_replaces() -> None:
    t = HookTable(max_hooks=2)
    t.set(spec("a", port=1))
    t.set(spec("b", port=2))
    with pytest.raises(HookLimitError, match="the agent holds 2 hooks") as info:
        t.set(spec("c", port=3))
    assert info.value.limit == 2
    assert "c" not in t
    t.set(spec("a", port=4))  # a replacement is not one more
    t.remove("b")
    t.set(spec("c", port=3))
    assert sorted(h.spec.id for h in t) == ["a", "c"]


def reference(t: HookTable, direction: Direction, port: int) -> list[str]:
    """What ``match`` must answer, from the rule list alone (the pre-index definition)."""
    return [r.id for r in t.rules() if r.direction is direction and r.port in (port, None)]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["set", "set", "remove", "disable", "enable"]),
            st.sampled_from(["a", "b", "c", "d", "e"]),
            st.sampled_from([IN, OUT]),
            st.one_of(st.none(), st.integers(0, 3)),
        ),
        max_size=40,
    )
)
def test_the_incremental_index_always_equals_a_full_rebuild(
    ops: list[tuple[str, str, Direction, int | None]],
) -> None:
    t = HookTable()
    for op, hook_id, direction, port in ops:
        if op == "set":
            t.set(spec(hook_id, int(direction), **({} if port is None else {"port": port})))
        elif hook_id in t:
            if op == "remove":
                t.remove(hook_id)
            else:
                t.set_enabled(hook_id, op == "enable")
        for d in (IN, OUT):
            for p in range(5):
                assert ids(t.match(d, p, 0, 0)) == reference(t, d, p)


def per_set(t: HookTable, port: int, n: int, **kw: int) -> float:
    """Median seconds of ``n`` replacements of one hook (each a real change)."""
    times = []
    for i in range(n):
        start = time.perf_counter()
        t.set(spec("probe", port=port, pid=i % 2, **kw))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def filled(n: int, same_port: bool = False) -> HookTable:
    t = HookTable()
    for i in range(n):
        t.set(
            spec(f"h{i}", port=7 if same_port else i % 0x10000, **({"pid": i} if same_port else {}))
        )
    return t


def test_a_change_costs_about_the_hooks_on_its_port_not_the_table() -> None:
    """Was quadratic: one change at 10k hooks on distinct ports rebuilt the index in 6.77 s."""
    small, big = per_set(filled(500), 0xFFFF, 60), per_set(filled(10_000), 0xFFFF, 60)
    assert big < 0.005, f"SetHook at 10,000 hooks took {big * 1e3:.2f} ms"
    assert big / small < 10, f"{big / small:.1f}x slower at 10,000 hooks than at 500"
    same = per_set(filled(9_000, same_port=True), 8, 60)  # other port: untouched by the 9,000
    assert same < 0.005
