"""Rolling a batch's columns up: one row per (vm, vcpu, dir, port, hook) and 1 s bucket.

Vectorized with numpy: the key columns are packed into one integer per event (mixed radix over
each column's range in this batch). Small key spaces (a batch of one host and hook: a few VMs,
vCPUs and ports within a second or two) are grouped by counting (``bincount``, ``minimum.at``),
wide ones by a lexicographic sort and ``reduceat``. The most frequent values per group are
bounded to ``TOP_VALUES``. :func:`merge` folds rollups into coarser buckets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from aggregator.wire import U64, Columns

__all__ = ["NS", "TOP_VALUES", "Rollup", "merge", "roll_up"]

NS = 1_000_000_000
TOP_VALUES = 4  # per rollup row and bucket: the most frequent values kept
_DENSE = 1 << 16  # key spaces up to this size are grouped by counting, larger ones by sorting


@dataclass(frozen=True, slots=True)
class Rollup:
    """Rows for the store: ``rows`` (key..., bucket, events, first_ts, last_ts, vm_name) and
    ``values`` (key..., bucket, value, n); key = (host, vm, vcpu, dir, port, hook)."""

    rows: list[tuple[str, int, int, int, int, str, int, int, int, int, str]]
    values: list[tuple[str, int, int, int, int, str, int, int, int]]


def _pack(keys: list[U64]) -> tuple[U64, list[tuple[int, int]]] | None:
    """The key columns as one mixed-radix integer per event, and each column's (low, span);
    ``None`` when the product of the spans would not fit ``_DENSE`` (sort instead)."""
    packed = np.zeros(keys[0].size, np.uint64)
    radix, spans = 1, []
    for k in keys:
        lo = int(k.min())
        span = int(k.max()) - lo + 1
        radix *= span
        if radix > _DENSE:
            return None
        spans.append((lo, span))
        packed = packed * np.uint64(span) + (k - np.uint64(lo))
    return packed, spans


def _dense(c: Columns, keys: list[U64], packed: U64, spans: list[tuple[int, int]]) -> Groups:
    """Groups by counting into an array as long as the key space (no sort)."""
    size = 1
    for _, span in spans:
        size *= span
    idx = packed.astype(np.intp)
    counts = np.bincount(idx, minlength=size)
    present = np.flatnonzero(counts)
    first = np.full(size, np.iinfo(np.uint64).max, np.uint64)
    last = np.zeros(size, np.uint64)
    name = np.zeros(size, np.uint64)
    np.minimum.at(first, idx, c.ts)
    np.maximum.at(last, idx, c.ts)
    np.maximum.at(name, idx, c.vm_name)
    cols: list[list[int]] = [[] for _ in spans]
    rest = present.astype(np.uint64)
    for i in range(len(spans) - 1, -1, -1):  # undo the mixed radix, last column first
        lo, span = spans[i]
        cols[i] = (rest % np.uint64(span) + np.uint64(lo)).tolist()
        rest = rest // np.uint64(span)
    group_of = np.zeros(size, np.intp)
    group_of[present] = np.arange(present.size)
    return Groups(cols, counts[present], first[present], last[present], name[present],
                  group_of[idx])  # fmt: skip


def _sorted(c: Columns, keys: list[U64]) -> Groups:
    """Groups by a lexicographic sort on the key columns (wide key spaces)."""
    order = np.lexsort(keys[::-1])
    diff = np.zeros(order.size, np.bool_)
    for col in keys:
        s = col[order]
        diff[1:] |= s[1:] != s[:-1]
    diff[0] = True
    starts = np.flatnonzero(diff)
    counts = np.diff(np.append(starts, order.size))
    ts = c.ts[order]
    heads = order[starts]
    group_sorted = np.cumsum(diff) - 1
    group_of = np.empty(order.size, np.intp)
    group_of[order] = group_sorted
    return Groups(
        [k[heads].tolist() for k in keys], counts, np.minimum.reduceat(ts, starts),
        np.maximum.reduceat(ts, starts), np.maximum.reduceat(c.vm_name[order], starts), group_of,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Groups:
    """Per group: its key columns, count, first and last ts, a vm_name index; per event: its
    group."""

    cols: list[list[int]]
    counts: npt.NDArray[np.intp]
    first: U64
    last: U64
    name: U64
    group_of: npt.NDArray[np.intp]


def roll_up(c: Columns) -> Rollup:
    """The batch's rollup rows (``c`` already deduplicated and non-empty)."""
    keys = [c.vm, c.vcpu, c.out.astype(np.uint64), c.port, c.hook, c.ts // np.uint64(NS)]
    dense = _pack(keys)
    g = _dense(c, keys, *dense) if dense is not None else _sorted(c, keys)
    cols = g.cols
    hooks = [c.hook_ids[h] for h in cols[4]]
    names = [c.vm_names[i] for i in g.name.tolist()]
    hosts = [c.host] * len(hooks)
    rows = list(
        zip(
            hosts, cols[0], cols[1], cols[2], cols[3], hooks, cols[5], g.counts.tolist(),
            g.first.tolist(), g.last.tolist(), names, strict=True,
        )
    )  # fmt: skip
    return Rollup(rows, _top_values(c.value, g.group_of, cols, hooks, c.host))


def _top_values(
    values: U64,
    group_of: npt.NDArray[np.intp],
    cols: list[list[int]],
    hooks: list[str],
    host: str,
) -> list[tuple[str, int, int, int, int, str, int, int, int]]:
    """The ``TOP_VALUES`` most frequent values of each group (ties: the lower value)."""
    ngroups, vlo = len(hooks), int(values.min())
    vspan = int(values.max()) - vlo + 1
    if ngroups * vspan <= _DENSE:  # count (group, value) pairs in a dense table
        table = np.bincount(
            group_of * vspan + (values - np.uint64(vlo)).astype(np.intp), minlength=ngroups * vspan
        ).reshape(ngroups, vspan)
        top = np.argsort(-table, axis=1, kind="stable")[:, :TOP_VALUES]
        n = np.take_along_axis(table, top, axis=1)
        gi, ci = np.nonzero(n)
        gs, vals, counts = gi.tolist(), (top[gi, ci] + vlo).tolist(), n[gi, ci].tolist()
    else:
        pair = (group_of.astype(np.uint64) << np.uint64(32)) | values
        uniq, ucounts = np.unique(pair, return_counts=True)
        g = (uniq >> np.uint64(32)).astype(np.intp)
        order = np.lexsort((-ucounts, g))
        g, uniq, ucounts = g[order], uniq[order], ucounts[order]
        first_of = np.flatnonzero(np.concatenate(([True], g[1:] != g[:-1])))
        rank = np.arange(g.size) - np.repeat(first_of, np.diff(np.append(first_of, g.size)))
        keep = rank < TOP_VALUES
        gs, counts = g[keep].tolist(), ucounts[keep].tolist()
        vals = (uniq[keep] & np.uint64(0xFFFF_FFFF)).tolist()
    return [
        (host, cols[0][i], cols[1][i], cols[2][i], cols[3][i], hooks[i], cols[5][i], v, k)
        for i, v, k in zip(gs, vals, counts, strict=True)
    ]


def merge(rollups: list[Rollup], width: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The rows of several rollups folded into buckets of ``width`` seconds: one row per key and
    bucket (a group commit writes each row once per level), values summed per value."""
    rows: dict[tuple[Any, ...], list[Any]] = {}
    for r in rollups:
        for x in r.rows:
            key = (*x[:6], x[6] - x[6] % width)
            have = rows.get(key)
            if have is None:
                rows[key] = [x[7], x[8], x[9], x[10]]
            else:
                have[0] += x[7]
                have[1] = min(have[1], x[8])
                have[2] = max(have[2], x[9])
                have[3] = x[10]
    values: dict[tuple[Any, ...], int] = {}
    for r in rollups:
        for v in r.values:
            vkey = (*v[:6], v[6] - v[6] % width, v[7])
            values[vkey] = values.get(vkey, 0) + v[8]
    return (
        [(*k, *v) for k, v in rows.items()],
        [(*k, n) for k, n in values.items()],
    )
