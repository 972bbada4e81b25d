"""Reading the store: grouped counts (Query), the hottest (host, vm, port) (Top), and hosts.

A query over ``since_s`` seconds reads the coarsest rollup level that still cuts the window
into at least 6 buckets (1 s, 1 min, 10 min or 1 h), so a query over the last hour of 1,000
hosts reads about 70,000 rows, not 3.6 million; the window starts at the bucket holding
``now - since_s`` (the reply says where). Every level is exact on its own.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from aggregator.errors import QueryError
from aggregator.rollup import TOP_VALUES
from aggregator.store import Store
from aggregator.store.schema import LEVELS

__all__ = ["GROUP_KEYS", "HostRow", "Reader", "TopLine", "level_for", "parse_where"]

GROUP_KEYS = ("host", "vm", "vm_name", "vcpu", "dir", "port", "hook")
_NUMERIC = {"vm", "vcpu", "port"}
_DIRS = {"in": 0, "out": 1}


def level_for(since_s: int) -> str:
    """The coarsest level with at least 6 buckets in the window."""
    return max(
        (lvl for lvl, width in LEVELS.items() if width * 6 <= max(since_s, 6)),
        key=LEVELS.__getitem__,
    )


def _number(token: str, text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise QueryError(token, "not a number") from None


def parse_where(text: str) -> tuple[str, list[Any]]:
    """``key=value,...`` (``port=LO-HI`` a range; ``dir=in|out``) as SQL and parameters."""
    clauses: list[str] = []
    params: list[Any] = []
    for token in filter(None, (t.strip() for t in text.split(","))):
        key, sep, value = token.partition("=")
        key = key.strip()
        if not sep or key not in GROUP_KEYS:
            raise QueryError(token, f"expected KEY=VALUE with KEY one of {', '.join(GROUP_KEYS)}")
        value = value.strip()
        if key == "dir":
            if value not in _DIRS:
                raise QueryError(token, "dir is in or out")
            clauses.append("dir = ?")
            params.append(_DIRS[value])
        elif key in _NUMERIC and "-" in value:
            lo, _, hi = value.partition("-")
            clauses.append(f"{key} BETWEEN ? AND ?")
            params += [_number(token, lo), _number(token, hi)]
        elif key in _NUMERIC:
            clauses.append(f"{key} = ?")
            params.append(_number(token, value))
        else:
            clauses.append(f"{key} = ?")
            params.append(value)
    return " AND ".join(clauses), params


@dataclass(frozen=True, slots=True)
class TopLine:
    host: str
    vm: int
    vm_name: str
    port: int
    dir: str
    events: int
    spark: list[int]
    last_ts: int

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.host, self.vm, self.port)


@dataclass(frozen=True, slots=True)
class HostRow:
    host: str
    online: bool
    epoch: str
    address: str
    labels: dict[str, str]
    events: int
    gaps: int
    drops: int
    rate: float
    last_event_ts: int
    last_seen_ts: int


class Reader:
    """Read-only queries on a store connection of its own."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def query(
        self, since_s: int, by: list[str], where: str, limit: int
    ) -> tuple[list[str], list[tuple[Any, ...]], int, int]:
        """(columns, rows, first second counted, bucket width) of a grouped count; each row is
        (keys..., events, first_ts, last_ts, [(value, n), ...] the most frequent values)."""
        by = by or ["host"]
        for key in by:
            if key not in GROUP_KEYS:
                raise QueryError(key, f"cannot group by it (one of {', '.join(GROUP_KEYS)})")
        lvl = level_for(since_s)
        width = LEVELS[lvl]
        start = int(time.time()) - since_s
        cond, params = parse_where(where)
        cols = ", ".join(by)  # checked against GROUP_KEYS above: column names only
        sql = (
            f"SELECT {cols}, SUM(events) AS ev, MIN(first_ts), MAX(last_ts) FROM r_{lvl} "
            f"WHERE bucket >= ?{' AND ' + cond if cond else ''} GROUP BY {cols} "
            "ORDER BY ev DESC LIMIT ?"
        )
        first = start - start % width
        rows = self.store.fetch(sql, [first, *params, limit])
        top = self._values(by, "h" if lvl == "h" else "m", first, cond, params)
        out = [(*r, top.get(tuple(r[: len(by)]), [])) for r in rows]
        return by, out, first, width

    def _values(
        self, by: list[str], lvl: str, first: int, cond: str, params: list[Any]
    ) -> dict[tuple[Any, ...], list[tuple[int, int]]]:
        """The ``TOP_VALUES`` most frequent values per group, from the minute or hour level."""
        cols = ", ".join(by)
        width = LEVELS[lvl]
        rows = self.store.fetch(
            f"SELECT {cols}, value, SUM(n) AS k FROM v_{lvl} WHERE bucket >= ?"
            f"{' AND ' + cond if cond else ''} GROUP BY {cols}, value",
            [first - first % width, *params],
        )
        groups: dict[tuple[Any, ...], list[tuple[int, int]]] = defaultdict(list)
        for r in rows:
            groups[tuple(r[: len(by)])].append((int(r[-2]), int(r[-1])))
        return {k: sorted(v, key=lambda x: (-x[1], x[0]))[:TOP_VALUES] for k, v in groups.items()}

    def top(
        self, window_s: int, hosts: set[str] | None, ports: set[int], hooks: set[str]
    ) -> list[TopLine]:
        """Per (host, vm, port): events per second over the last ``window_s`` whole seconds
        (the current second, still filling, is left out)."""
        now = int(time.time())
        start = now - window_s
        cond = ["bucket >= ?", "bucket < ?"]
        params: list[Any] = [start, now]
        for name, values in (("host", hosts), ("port", ports), ("hook", hooks)):
            if values:
                cond.append(f"{name} IN ({', '.join('?' * len(values))})")
                params += sorted(values)
        rows = self.store.fetch(
            "SELECT host, vm, port, bucket, SUM(events), MAX(last_ts), MAX(vm_name), "
            f"MIN(dir), MAX(dir) FROM r_s WHERE {' AND '.join(cond)} "
            "GROUP BY host, vm, port, bucket",
            params,
        )
        acc: dict[tuple[str, int, int], dict[str, Any]] = defaultdict(
            lambda: {"spark": [0] * window_s, "last": 0, "name": "", "dirs": set()}
        )
        for host, vm, port, bucket, events, last, name, dmin, dmax in rows:
            a = acc[(host, int(vm), int(port))]
            i = int(bucket) - start
            if 0 <= i < window_s:
                a["spark"][i] += int(events)
            a["last"] = max(a["last"], int(last))
            a["name"] = name
            a["dirs"] |= {int(dmin), int(dmax)}
        return [
            TopLine(h, vm, a["name"], port, _dir(a["dirs"]), sum(a["spark"]), a["spark"], a["last"])
            for (h, vm, port), a in acc.items()
        ]

    def hosts(self, grace_s: float = 5.0) -> list[HostRow]:
        now = int(time.time())
        gaps = self.store.gaps(int(grace_s * 1e9))
        counted = {
            h: (int(ev), int(last))
            for h, ev, last in self.store.fetch(
                "SELECT host, SUM(events), MAX(last_ts) FROM r_h GROUP BY host"
            )
        }
        recent = dict(
            self.store.fetch(
                "SELECT host, SUM(events) FROM r_s WHERE bucket >= ? GROUP BY host", (now - 10,)
            )
        )
        known = {
            r[0]: r
            for r in self.store.fetch(
                "SELECT host, online, epoch, address, labels, drops, abandoned, last_seen "
                "FROM hosts"
            )
        }
        out = []
        for host in sorted(set(known) | set(counted)):
            _, online, epoch, address, labels, drops, abandoned, seen = known.get(
                host, (host, False, "", "", "{}", 0, 0, 0)
            )
            events, last = counted.get(host, (0, 0))
            out.append(
                HostRow(
                    host, bool(online), epoch, address, json.loads(labels), events,
                    gaps.get(host, 0) + int(abandoned), int(drops),
                    int(recent.get(host, 0)) / 10.0, last, max(int(seen), last),
                )
            )  # fmt: skip
        return out


def _dir(dirs: set[int]) -> str:
    return "in/out" if len(dirs) > 1 else ("out" if 1 in dirs else "in")
