"""The kernel filter builder: exact text for simple tables, and the superset property."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.backends.kvm_trace.filter import build_filter, port_expr, terms_from_rules
from agent.hooks.table import HookTable
from agent.model import Direction
from agent.wire import hooks_pb2

IN, OUT = hooks_pb2.DIRECTION_IN, hooks_pb2.DIRECTION_OUT


def _table(*specs: hooks_pb2.HookSpec) -> HookTable:
    table = HookTable()
    for spec in specs:
        table.set(spec)
    return table


def _filter(table: HookTable, tids: dict[int, frozenset[int]] | None = None) -> str | None:
    return build_filter(terms_from_rules(table.rules(), tids or {}))


def evaluate(expr: str, rw: int, port: int, pid: int, cpu: int) -> bool:
    """The tracefs filter grammar we emit (==, >=, <=, &&, ||, parentheses) as Python."""
    py = expr.replace("&&", " and ").replace("||", " or ")
    assert re.fullmatch(r"[\w\s()=<>]+", py), expr
    env = {"rw": rw, "port": port, "common_pid": pid, "common_cpu": cpu}
    return bool(eval(py, {"__builtins__": {}}, env))


def test_port_expr_ranges() -> None:
    assert port_expr([0x71, 0x70]) == "port==0x70||port==0x71"
    assert port_expr([0x60, 0x61, 0x62, 0x64]) == "(port>=0x60&&port<=0x62)||port==0x64"


def test_no_hooks_means_no_event() -> None:
    assert _filter(HookTable()) is None


def test_ports_by_direction() -> None:
    table = _table(
        hooks_pb2.HookSpec(id="a", direction=IN, port=0x70),
        hooks_pb2.HookSpec(id="b", direction=IN, port=0x71),
        hooks_pb2.HookSpec(id="c", direction=OUT, port=0x80),
    )
    assert _filter(table) == "(rw==0&&(((port==0x70||port==0x71))))||(rw==1&&(((port==0x80))))"


def test_all_ports_drops_the_port_term() -> None:
    table = _table(
        hooks_pb2.HookSpec(id="a", direction=IN, port=0x70),
        hooks_pb2.HookSpec(id="all", direction=IN),
    )
    assert _filter(table) == "(rw==0)"


def test_pid_hook_selects_vm_threads() -> None:
    table = _table(hooks_pb2.HookSpec(id="a", direction=IN, port=0x70, pid=100))
    expr = _filter(table, {100: frozenset({101, 102})})
    assert expr == "(rw==0&&(((port==0x70)&&(common_pid==101||common_pid==102))))"


def test_pid_hook_without_vm_matches_nothing() -> None:
    table = _table(hooks_pb2.HookSpec(id="a", direction=IN, port=0x70, pid=100))
    assert _filter(table, {}) is None


def test_core_hook() -> None:
    table = _table(hooks_pb2.HookSpec(id="a", direction=OUT, core=1))
    assert _filter(table) == "(rw==1&&((common_cpu==1)))"


def test_long_filters_are_coarsened() -> None:
    specs = [hooks_pb2.HookSpec(id=f"h{p}", direction=IN, port=p, pid=7) for p in range(0, 400, 2)]
    table = _table(*specs)
    tids = {7: frozenset(range(1000, 1100))}
    exact = build_filter(terms_from_rules(table.rules(), tids), limit=1 << 20)
    assert exact is not None
    assert "common_pid" in exact
    coarse = build_filter(terms_from_rules(table.rules(), tids), limit=3000)
    assert coarse is not None
    assert "common_pid" not in coarse
    assert "port==0x2" in coarse
    assert build_filter(terms_from_rules(table.rules(), tids), limit=100) == "(rw==0)"


_rules = st.lists(
    st.tuples(
        st.sampled_from([IN, OUT]),
        st.none() | st.integers(0x60, 0x6F),
        st.none() | st.sampled_from([10, 20]),
        st.none() | st.integers(0, 1),
    ),
    max_size=6,
)
_access = st.tuples(st.integers(0, 1), st.integers(0x5E, 0x71), st.sampled_from([10, 20, 30]),
                    st.integers(0, 1))  # fmt: skip
TIDS = {10: frozenset({11, 12}), 20: frozenset({21})}
TID_OF = {10: 11, 20: 21, 30: 31}


@given(_rules, st.lists(_access, max_size=20))
def test_filter_passes_every_matching_access(
    rules: list[tuple[hooks_pb2.Direction.ValueType, int | None, int | None, int | None]],
    accesses: list[tuple[int, int, int, int]],
) -> None:
    table = HookTable()
    for i, (direction, port, pid, core) in enumerate(rules):
        spec = hooks_pb2.HookSpec(id=f"h{i}", direction=direction, port=port, pid=pid, core=core)
        table.set(spec)
    expr = _filter(table, TIDS)
    for rw, port, vm, cpu in accesses:
        matched = table.match(Direction.IN if rw == 0 else Direction.OUT, port, vm, cpu)
        passes = expr is not None and evaluate(expr, rw, port, TID_OF[vm], cpu)
        if matched:
            assert passes, (expr, rw, port, vm, cpu)
        if passes and all(p is None and c is None for _, _, p, c in rules):
            assert matched  # port and direction only: the kernel filter is exact


@pytest.mark.tracefs
def test_kernel_accepts_the_filters(tmp_path: object) -> None:
    from tests.agent.kvm_trace.conftest import TRACEFS

    inst = TRACEFS / "instances" / "ioincheck-filter"
    inst.mkdir()
    try:
        table = _table(
            hooks_pb2.HookSpec(id="a", direction=IN, port=0x70, pid=5, core=1),
            hooks_pb2.HookSpec(id="b", direction=OUT, port=0x3F8),
            hooks_pb2.HookSpec(id="c", direction=OUT, port=0x3F9),
            hooks_pb2.HookSpec(id="d", direction=OUT, port=0x3FA),
        )
        expr = _filter(table, {5: frozenset({6, 7})})
        assert expr is not None
        (inst / "events/kvm/kvm_pio/filter").write_text(expr)
        assert (inst / "events/kvm/kvm_pio/filter").read_text().strip() == expr
    finally:
        inst.rmdir()
