"""Conditions pushed into the kvm_pio tracepoint filter: exact where expressible, else a superset.

Checked against the scalar evaluator over a grid of accesses with a small evaluator of the
filter syntax itself (the kernel's grammar for these operators)."""

from __future__ import annotations

import itertools
import re

import pytest

from agent.script import compile_condition
from agent.script.parser import parse_condition
from agent.script.tracefilter import kernel_filter


def kernel_eval(expr: str, port: int, size: int, val: int) -> bool:
    """Evaluate a tracefs filter with Python (the operators we emit: == != < <= > >= & && || !)."""
    py = expr.replace("&&", " and ").replace("||", " or ")
    py = re.sub(r"!(?!=)", " not ", py)
    py = re.sub(r"(port|size|val)&(0x[0-9a-f]+)", r"(\1&\2!=0)", py)
    return bool(eval(py, {}, {"port": port, "size": size, "val": val}))


def accepts(source: str, port: int, size: int, val: int) -> bool:
    regs = {"rax": val}
    return bool(compile_condition(source).run(regs, {"context": port}, {}).value)


CASES = [
    ("$context == 3f8", "port==0x3f8", True),
    ("3f8 == $context", "port==0x3f8", True),
    ("$context >= 70 && $context < 72", "(port>=0x70)&&(port<0x72)", True),
    ("$context == 70 || $context == 71", "(port==0x70)||(port==0x71)", True),
    ("!($context == 60)", "!(port==0x60)", True),
    ("@eax == 41", "val==0x41", True),
    ("@eax & 80", "val&0x80", True),
    ("$context", "port!=0x0", True),
    ("@al == 41", "(size<=1&&val==0x41)||size>1", False),
    ("@ax != 0", "(size<=2&&val!=0x0)||size>2", False),
    ("$context == 3f8 && @al != 0", "(port==0x3f8)&&((size<=1&&val!=0x0)||size>1)", False),
    ("$context == 3f8 && @rbx == 1", "(port==0x3f8)", False),
    ("$context == 3f8 || @rbx == 1", None, False),
    ("$context + 1 == 3f9", None, False),
    ("@eax < -1", None, False),
]


@pytest.mark.parametrize(("source", "expr", "exact"), CASES)
def test_translation(source: str, expr: str | None, exact: bool) -> None:
    f = kernel_filter(parse_condition(source))
    assert (f.expr, f.exact) == (expr, exact)


@pytest.mark.parametrize("source", [c for c, e, _ in CASES if e is not None])
def test_filter_is_a_superset_and_exact_when_it_says_so(source: str) -> None:
    f = kernel_filter(parse_condition(source))
    assert f.expr is not None
    for port, size, val in itertools.product((0, 0x60, 0x70, 0x71, 0x3F8), (1, 2, 4),
                                             (0, 1, 0x41, 0x80, 0x141, 0xFFFF0041)):  # fmt: skip
        val &= (1 << 8 * size) - 1
        want, got = accepts(source, port, size, val), kernel_eval(f.expr, port, size, val)
        assert got or not want, (port, size, val)  # never drops an accepted access
        if f.exact:
            assert got == want, (port, size, val)


def test_the_trace_backend_filter_carries_each_hooks_condition() -> None:
    from agent.backends.kvm_trace.filter import build_filter, terms_from_rules
    from agent.hooks import lang
    from agent.hooks.table import HookTable

    table = HookTable()
    table.set(lang.parse("!ioin 71 condition { @eax == 26 }", hook_id="a"))
    table.set(lang.parse("!ioin 70", hook_id="b"))
    table.set(lang.parse("!ioout 80 condition { @rbx == 1 }", hook_id="c"))  # nothing to push
    expr = build_filter(terms_from_rules(table.rules(), {}))
    assert (
        expr == "(rw==0&&(((port==0x70))||((port==0x71)&&(val==0x26))))||(rw==1&&(((port==0x80))))"
    )
    coarse = build_filter(terms_from_rules(table.rules(), {}), limit=40)
    assert coarse is not None
    assert "val" not in coarse  # coarsening drops conditions first: still a superset
