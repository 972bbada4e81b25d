"""Rolling a batch's columns up: one row per (vm, vcpu, dir, port, hook) and 1 s bucket.

Vectorized with numpy: the key columns are packed into one integer per event (mixed radix over
each column's range in this batch; a lexicographic sort where that would overflow), events are
grouped by a stable sort, and each group's count, first and last timestamp come from
``reduceat``. The most frequent values per group are bounded to ``TOP_VALUES``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from aggregator.wire import U64, Columns

__all__ = ["NS", "TOP_VALUES", "Rollup", "roll_up"]

NS = 1_000_000_000
TOP_VALUES = 4  # per rollup row and bucket: the most frequent values kept


@dataclass(frozen=True, slots=True)
class Rollup:
    """Rows for the store: ``rows`` (key..., bucket, events, first_ts, last_ts, vm_name) and
    ``values`` (key..., bucket, value, n); key = (host, vm, vcpu, dir, port, hook)."""

    rows: list[tuple[str, int, int, int, int, str, int, int, int, int, str]]
    values: list[tuple[str, int, int, int, int, str, int, int, int]]


def _group_ids(keys: list[U64]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """(order, starts): a permutation grouping equal key tuples, and where each group starts."""
    packed = np.zeros(keys[0].size, np.uint64)
    radix = 1
    for k in keys:
        lo = int(k.min())
        span = int(k.max()) - lo + 1
        radix *= span
        if radix >= 1 << 63:  # too wide for one integer: sort on the columns themselves
            order = np.lexsort(keys[::-1])
            diff = np.zeros(order.size, np.bool_)
            for col in keys:
                s = col[order]
                diff[1:] |= s[1:] != s[:-1]
            diff[0] = True
            return order, np.flatnonzero(diff)
        packed = packed * np.uint64(span) + (k - np.uint64(lo))
    order = np.argsort(packed, kind="stable")
    s = packed[order]
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    return order, starts


def roll_up(c: Columns) -> Rollup:
    """The batch's rollup rows (``c`` already deduplicated and non-empty)."""
    bucket = c.ts // np.uint64(NS)
    keys = [c.vm, c.vcpu, c.out.astype(np.uint64), c.port, c.hook, bucket]
    order, starts = _group_ids(keys)
    counts = np.diff(np.append(starts, order.size))
    ts = c.ts[order]
    first = np.minimum.reduceat(ts, starts)
    last = np.maximum.reduceat(ts, starts)
    heads = order[starts]  # one event of each group, for its key columns
    vm_name = c.vm_name[order]
    name_at = np.maximum.reduceat(vm_name, starts)  # one name per group (the highest index)
    cols = [k[heads].tolist() for k in keys]
    hooks = [c.hook_ids[h] for h in cols[4]]
    names = [c.vm_names[i] for i in name_at.tolist()]
    hosts = [c.host] * len(hooks)
    rows = list(
        zip(
            hosts, cols[0], cols[1], cols[2], cols[3], hooks, cols[5], counts.tolist(),
            first.tolist(), last.tolist(), names, strict=True,
        )
    )  # fmt: skip
    return Rollup(rows, _top_values(c.value[order], starts, order.size, cols, hooks, c.host))


def _top_values(
    values: U64,
    starts: npt.NDArray[np.intp],
    n: int,
    cols: list[list[int]],
    hooks: list[str],
    host: str,
) -> list[tuple[str, int, int, int, int, str, int, int, int]]:
    """The ``TOP_VALUES`` most frequent values of each group (values sorted within groups)."""
    group = np.repeat(np.arange(starts.size), np.diff(np.append(starts, n)))
    pair = (group.astype(np.uint64) << np.uint64(32)) | values
    uniq, counts = np.unique(pair, return_counts=True)
    g = (uniq >> np.uint64(32)).astype(np.intp)
    order = np.lexsort((-counts, g))
    g, uniq, counts = g[order], uniq[order], counts[order]
    first_of = np.flatnonzero(np.concatenate(([True], g[1:] != g[:-1])))
    rank = np.arange(g.size) - np.repeat(first_of, np.diff(np.append(first_of, g.size)))
    keep = rank < TOP_VALUES
    gs = g[keep].tolist()
    vals = (uniq[keep] & np.uint64(0xFFFF_FFFF)).tolist()
    return [
        (host, cols[0][i], cols[1][i], cols[2][i], cols[3][i], hooks[i], cols[5][i], v, k)
        for i, v, k in zip(gs, vals, counts[keep].tolist(), strict=True)
    ]
