"""The kernel-side event filter, rebuilt from the hook table: HyperDbg's I/O bitmap, in tracefs.

The expression is written to ``instances/<ours>/events/kvm/kvm_pio/filter`` (syntax:
Documentation/trace/events.rst, "Event filtering"). It is a *superset* filter: every access a rule
could match passes, so user space matches exactly with ``HookTable.match``. Hooks are grouped by
direction, then by their (VM, host CPU, condition) restriction, whose ports are merged into
ranges; a hook's ``condition { }`` adds what the tracepoint's fields can say of it
(:mod:`agent.script.tracefilter`), so accesses it refuses never reach user space::

    (rw==0&&(port==0x70||port==0x71)) || (rw==1&&(common_pid==812||common_pid==813))

``rw`` is 0 for IN and 1 for OUT (``trace_kvm_pio(!in, ...)`` in arch/x86/kvm/x86.c). A VM is
selected by its threads' ids (``common_pid`` is the thread id). The kernel refuses filters of a
page or more (``memdup_user_nul`` in kernel/trace/trace_events.c), so an over-long expression is
coarsened step by step (pids, CPUs and conditions dropped, then ports) — still a superset.
``None`` means "no hook at all": the caller disables the event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agent.hooks.table import HookRule
from agent.model import Direction
from agent.script.nodes import Block
from agent.script.tracefilter import kernel_filter

__all__ = ["MAX_FILTER_LEN", "RW", "Term", "build_filter", "port_expr", "terms_from_rules"]

MAX_FILTER_LEN = 3800  # below one page: the kernel refuses writes of PAGE_SIZE bytes or more
RW = {Direction.IN: 0, Direction.OUT: 1}  # kvm_pio's rw field: KVM_PIO_IN / write


@dataclass(frozen=True, slots=True)
class Term:
    """One restriction: a direction, optionally ports, thread ids and a host CPU."""

    direction: Direction
    ports: frozenset[int] | None  # None: every port
    tids: frozenset[int] | None  # None: every thread
    core: int | None
    condition: str | None = None  # the hook's condition, as far as the fields can say it


def terms_from_rules(
    rules: Iterable[HookRule], vm_tids: Mapping[int, frozenset[int]]
) -> list[Term]:
    """One term per rule; a pid rule whose VM has no threads (gone, not a VM) matches nothing."""
    terms = []
    for rule in rules:
        tids = None
        if rule.pid is not None:
            tids = vm_tids.get(rule.pid, frozenset())
            if not tids:
                continue
        ports = None if rule.port is None else frozenset({rule.port})
        terms.append(Term(rule.direction, ports, tids, rule.core, _condition(rule)))
    return terms


def _condition(rule: HookRule) -> str | None:
    """The kernel part of a rule's ``condition { }`` (:mod:`agent.script.tracefilter`): a
    superset, so user space, which evaluates the condition exactly, loses nothing."""
    hs = rule.script
    if hs is None or hs.condition is None or isinstance(hs.condition.tree, Block):
        return None
    return kernel_filter(hs.condition.tree).expr


def port_expr(ports: Iterable[int], field: str = "port") -> str:
    """``field==a||field==b||(field>=c&&field<=d)``: runs of three or more become a range."""
    values = sorted(set(ports))
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"({field}>={values[i]:#x}&&{field}<={values[j]:#x})")
            i = j + 1
        else:
            parts.append(f"{field}=={values[i]:#x}")
            i += 1
    return "||".join(parts)


def _direction_expr(terms: list[Term]) -> str:
    Key = tuple[frozenset[int] | None, int | None, str | None]
    groups: dict[Key, set[int] | None] = {}
    for t in terms:
        key = (t.tids, t.core, t.condition)
        if key in groups and groups[key] is None:
            continue
        groups[key] = None if t.ports is None else (groups.get(key) or set()) | t.ports
    free = groups.get((None, None, None), ())
    if free is None:
        return ""  # an unrestricted hook: every access in this direction
    for key, ports in list(groups.items()):  # restricted groups the unrestricted one covers
        if key != (None, None, None) and ports is not None and ports <= set(free):
            del groups[key]
    alts = []
    for (tids, core, condition), ports in groups.items():
        conj = []
        if ports is not None:
            conj.append(f"({port_expr(ports)})")
        if tids is not None:
            conj.append(f"({'||'.join(f'common_pid=={t}' for t in sorted(tids))})")
        if core is not None:
            conj.append(f"common_cpu=={core}")
        if condition is not None:
            conj.append(f"({condition})")
        alts.append("&&".join(conj))
    return "||".join(f"({a})" for a in sorted(alts))


def _render(terms: list[Term]) -> str | None:
    out = []
    for d in Direction:
        mine = [t for t in terms if t.direction is d]
        if mine:
            inner = _direction_expr(mine)
            out.append(f"(rw=={RW[d]}&&({inner}))" if inner else f"(rw=={RW[d]})")
    return "||".join(out) if out else None


def build_filter(terms: list[Term], limit: int = MAX_FILTER_LEN) -> str | None:
    """The filter expression for ``terms``, or ``None`` when there is nothing to trace."""
    expr = _render(terms)
    if expr is None or len(expr) <= limit:
        return expr
    coarse = [Term(t.direction, t.ports, None, None) for t in terms]  # drop pid / CPU terms
    expr = _render(coarse)
    if expr is not None and len(expr) <= limit:
        return expr
    return _render([Term(t.direction, None, None, None) for t in terms])  # directions only
