"""The store on SQLite (the same statements run on PostgreSQL in test_scale.py): rollups at
every level, claims, bounded seen ranges, retention, grouped queries."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from agent.batch import Block, pack_batch
from aggregator.errors import QueryError
from aggregator.ingest import Ingestor, prepare
from aggregator.query import Reader, level_for, parse_where
from aggregator.rollup import TOP_VALUES, roll_up
from aggregator.store import open_store
from aggregator.store.base import _merge
from aggregator.wire import read_batch

NOW = time.time_ns()


def payload(first: int, n: int, port: int = 0x3F8, host: str = "h1", epoch: str = "e1") -> bytes:
    b = Block(
        "in-3f8", [NOW + i * 1000 for i in range(n)], [port] * n, [i % 10 for i in range(n)],
        [i % 2 for i in range(n)], ["vm0", "vm1"] * (n // 2) + ["vm0"] * (n % 2), [0] * n,
        [0] * n, [1] * n, [2] * n, list(range(first, first + n)),
    )  # fmt: skip
    return pack_batch(host, epoch, b).SerializeToString()


def test_rollup_counts_and_bounds_values() -> None:
    r = roll_up(read_batch(payload(1, 1000)))
    assert sum(row[7] for row in r.rows) == 1000
    assert {(row[1], row[4]) for row in r.rows} == {(0, 0x3F8), (1, 0x3F8)}
    per_row: dict[tuple[object, ...], int] = {}
    for v in r.values:
        per_row[v[:7]] = per_row.get(v[:7], 0) + 1
    assert max(per_row.values()) <= TOP_VALUES


def test_runs_cover_distinct_sequence_numbers() -> None:
    cols = read_batch(payload(10, 5))
    p = prepare(cols)
    assert p.runs == [("h1", "e1", 10, 14)]


def test_claims_count_each_run_once_across_commits(tmp_path: Path) -> None:
    store = open_store("", tmp_path)
    ing = Ingestor(store)
    ing.commit([("h1", payload(1, 100), ""), ("h1", payload(101, 50), "")])
    ing.commit([("h1", payload(1, 100), ""), ("h1", payload(151, 10), "")])
    assert (ing.stats.events, ing.stats.duplicates) == (160, 100)
    for lvl in "smh":
        assert store.fetch(f"SELECT SUM(events) FROM r_{lvl}") == [(160,)]


def test_ranges_merge_and_give_up_the_oldest_holes() -> None:
    assert _merge([(1, 10), (11, 20), (30, 40)], 10) == ([(1, 20), (30, 40)], 0)
    assert _merge([(1, 10), (20, 30), (40, 50), (60, 70)], 2) == ([(1, 50), (60, 70)], 18)


def test_compaction_keeps_the_ranges_bounded(tmp_path: Path) -> None:
    store = open_store("", tmp_path)
    ing = Ingestor(store)
    ing.commit([("h1", payload(1 + 20 * i, 10), "") for i in range(30)])  # 30 runs, 29 holes
    store._x("UPDATE seen SET at = 0")  # as if claimed long ago
    store.maintain(int(time.time()), {"s": 3600, "m": 86400, "h": 86400}, 5)
    rows = store.fetch("SELECT lo, hi FROM seen ORDER BY lo")
    assert len(rows) == 5
    assert rows[0][0] == 1
    assert store.fetch("SELECT abandoned FROM hosts WHERE host = 'h1'") == [(25 * 10,)]
    ing.commit([("h1", payload(1, 10), "")])  # still a duplicate after compaction
    assert ing.stats.events == 300


def test_retention_deletes_old_buckets_per_level(tmp_path: Path) -> None:
    store = open_store("", tmp_path)
    Ingestor(store).commit([("h1", payload(1, 10), "")])
    later = int(time.time()) + 7200
    store.maintain(later, {"s": 60, "m": 86400, "h": 86400}, 100)
    assert store.fetch("SELECT COUNT(*) FROM r_s") == [(0,)]
    assert store.fetch("SELECT SUM(events) FROM r_m") == [(10,)]


def test_query_groups_and_filters(tmp_path: Path) -> None:
    store = open_store("", tmp_path)
    Ingestor(store).commit(
        [("h1", payload(1, 10, 0x3F8), ""), ("h2", payload(1, 4, 0x3F2, host="h2"), "")]
    )
    cols, rows, first, width = Reader(store).query(3600, ["host", "port"], "port=0x3f0-0x3f7", 10)
    assert width == 600
    assert first % 600 == 0
    assert cols == ["host", "port"]
    assert [(r[0], r[1], r[2]) for r in rows] == [("h2", 0x3F2, 4)]


@pytest.mark.parametrize(
    ("where", "token"),
    [("colour=red", "colour=red"), ("port=zz", "port=zz"), ("dir=up", "dir=up"), ("host", "host")],
)
def test_where_refusals_name_the_token(where: str, token: str) -> None:
    with pytest.raises(QueryError) as exc:
        parse_where(where)
    assert exc.value.token == token


def test_levels_by_window() -> None:
    assert [level_for(s) for s in (1, 60, 600, 3600, 86400)] == ["s", "s", "m", "t", "h"]


@pytest.mark.parametrize("spread", [10, 1 << 28])  # dense counting, and the sorting path
def test_top_values_are_the_most_frequent(spread: int) -> None:
    n = 600
    values = [(i % 7) * spread if i % 3 else 5 * spread for i in range(n)]
    b = Block(
        "in-3f8", [NOW] * n, [0x70] * n, values, [0] * n, ["v"] * n, [0] * n, [0] * n,
        [1] * n, [2] * n, list(range(1, n + 1)),
    )  # fmt: skip
    r = roll_up(read_batch(pack_batch("h1", "e1", b).SerializeToString()))
    want = Counter(values).most_common()
    got = sorted(((v[7], v[8]) for v in r.values), key=lambda x: (-x[1], x[0]))
    assert got == sorted(want, key=lambda x: (-x[1], x[0]))[:TOP_VALUES]
