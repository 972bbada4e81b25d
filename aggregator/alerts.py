"""Alert rules: a TOML file, reloaded when it changes; evaluated on each commit's new rollups.

A rule (``[[rule]]``) matches rollup rows by ``ports`` (``"0x3f0-0x3f7"`` or a number),
``dir`` (in, out, any), ``hosts``, ``vms``, ``labels`` (of the host's birth) and ``values``
(ranges the row's most frequent values must fall in), then fires when one of its conditions
holds for a (host, vm):

- nothing else given: any matching event;
- ``rate = N``: more than N matching events/s over ``window_s``;
- ``first_seen = true``: a (vm, port) pair on that host never counted before;
- ``distinct_ports = N``: N or more distinct matching ports within ``window_s`` (a port scan).

An alert is published on ``ioin/v1/alerts/<rule>`` (JSON, QoS 1), at most once per
``cooldown_s`` per (rule, host, vm). State is bounded: ``MAX_KEYS`` (host, vm) windows per rule
and ``MAX_SEEN`` first-seen pairs (least recently used dropped first).
"""

from __future__ import annotations

import json
import time
import tomllib
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.model import check_id
from aggregator.errors import ConfigError
from aggregator.rollup import Rollup

__all__ = ["MAX_KEYS", "Alert", "Engine", "Rule", "load_rules"]

MAX_KEYS = 100_000
MAX_SEEN = 1_000_000
Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    ports: Ranges = ()
    dir: str = "any"
    hosts: frozenset[str] = frozenset()
    vms: frozenset[int] = frozenset()
    labels: tuple[tuple[str, str], ...] = ()
    values: Ranges = ()
    rate: float = 0.0
    window_s: int = 10
    first_seen: bool = False
    distinct_ports: int = 0
    cooldown_s: float = 60.0


@dataclass(frozen=True, slots=True)
class Alert:
    rule: str
    host: str
    vm: int
    vm_name: str
    port: int
    dir: str
    reason: str
    ts: int
    events: int

    def payload(self) -> bytes:
        return json.dumps(
            {k: getattr(self, k) for k in self.__dataclass_fields__}, separators=(",", ":")
        ).encode()


def _ranges(where: str, items: Any) -> Ranges:
    if not isinstance(items, list):
        raise ConfigError(where, 'must be a list of numbers or "LO-HI" ranges')
    out = []
    for item in items:
        text = str(item)
        lo, _, hi = text.partition("-")
        try:
            a, b = (item, item) if isinstance(item, int) else (int(lo, 0), int(hi or lo, 0))
        except ValueError:
            raise ConfigError(where, f"'{text}' is not a number or LO-HI range") from None
        if not 0 <= a <= b <= 0xFFFF_FFFF:
            raise ConfigError(where, f"'{text}' is not an ascending range of unsigned numbers")
        out.append((a, b))
    return tuple(out)


_RULE_KEYS = set(Rule.__dataclass_fields__)


def load_rules(path: Path) -> list[Rule]:
    """Parse a rules file; errors name the file, the rule and the key."""
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), str(exc)) from None
    rules = []
    for i, r in enumerate(doc.get("rule", [])):
        where = f"{path}: rule[{i}]"
        unknown = set(r) - _RULE_KEYS
        if unknown:
            raise ConfigError(f"{where}.{sorted(unknown)[0]}", "unknown key")
        try:
            name = check_id("rule name", str(r.get("name", "")))
        except ValueError as exc:
            raise ConfigError(f"{where}.name", str(exc)) from None
        if r.get("dir", "any") not in ("in", "out", "any"):
            raise ConfigError(f"{where}.dir", f"'{r['dir']}' is not in, out or any")
        labels = r.get("labels", {})
        if not isinstance(labels, dict):
            raise ConfigError(f"{where}.labels", "must be a table of strings")
        try:
            rule = Rule(
                name, _ranges(f"{where}.ports", r.get("ports", [])), r.get("dir", "any"),
                frozenset(map(str, r.get("hosts", []))), frozenset(map(int, r.get("vms", []))),
                tuple(sorted((str(k), str(v)) for k, v in labels.items())),
                _ranges(f"{where}.values", r.get("values", [])), float(r.get("rate", 0)),
                int(r.get("window_s", 10)), bool(r.get("first_seen", False)),
                int(r.get("distinct_ports", 0)), float(r.get("cooldown_s", 60)),
            )  # fmt: skip
        except (TypeError, ValueError) as exc:
            raise ConfigError(where, str(exc)) from None
        if not 1 <= rule.window_s <= 3600:
            raise ConfigError(f"{where}.window_s", f"{rule.window_s} out of range 1..3600")
        rules.append(rule)
    return rules


def _inside(x: int, ranges: Ranges) -> bool:
    return not ranges or any(lo <= x <= hi for lo, hi in ranges)


@dataclass(slots=True)
class _Window:
    """Per (rule, host, vm): events per second and the last second each port was seen."""

    seconds: deque[tuple[int, int]] = field(default_factory=deque)
    ports: dict[int, int] = field(default_factory=dict)
    fired: float = -1e18


class Engine:
    """Evaluates the rules on new rollups; ``publish`` sends each alert."""

    def __init__(self, publish: Callable[[Alert], None], labels: Callable[[str], dict[str, str]]):
        self.rules: list[Rule] = []
        self._publish = publish
        self._labels = labels
        self._windows: dict[str, OrderedDict[tuple[str, int], _Window]] = {}
        self._seen: OrderedDict[tuple[str, int, int], None] = OrderedDict()
        self.fired: dict[str, int] = {}
        self.recent: deque[Alert] = deque(maxlen=50)

    def set_rules(self, rules: list[Rule]) -> None:
        self.rules = rules
        self._windows = {r.name: self._windows.get(r.name, OrderedDict()) for r in rules}

    def remember(self, pairs: Iterable[tuple[str, int, int]]) -> None:
        """(host, vm, port) pairs counted before (from the store at start)."""
        for p in pairs:
            self._seen[p] = None

    def feed(self, rollups: list[Rollup]) -> None:
        for r in rollups:
            values: dict[tuple[Any, ...], list[int]] = {}
            for v in r.values:
                values.setdefault(v[:7], []).append(v[7])
            for row in r.rows:
                new = self._first(row[0], row[1], row[4])
                for rule in self.rules:
                    if self._match(rule, row, values.get(row[:7], [])):
                        self._evaluate(rule, row, new)

    def _first(self, host: str, vm: int, port: int) -> bool:
        key = (host, vm, port)
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        if len(self._seen) > MAX_SEEN:
            self._seen.popitem(last=False)
        return True

    def _match(self, rule: Rule, row: tuple[Any, ...], values: list[int]) -> bool:
        host, vm, _, d, port = row[:5]
        if rule.dir != "any" and rule.dir != ("out" if d else "in"):
            return False
        if (rule.hosts and host not in rule.hosts) or (rule.vms and vm not in rule.vms):
            return False
        if not _inside(port, rule.ports):
            return False
        if rule.values and not any(_inside(v, rule.values) for v in values):
            return False
        labels = self._labels(host) if rule.labels else {}
        return all(labels.get(k) == v for k, v in rule.labels)

    def _evaluate(self, rule: Rule, row: tuple[Any, ...], new: bool) -> None:
        host, vm, _, d, port, _, bucket, events = row[:8]
        windows = self._windows.setdefault(rule.name, OrderedDict())
        w = windows.get((host, vm))
        if w is None:
            w = windows[(host, vm)] = _Window()
            if len(windows) > MAX_KEYS:
                windows.popitem(last=False)
        windows.move_to_end((host, vm))
        w.seconds.append((bucket, events))
        w.ports[port] = bucket
        while w.seconds and w.seconds[0][0] <= bucket - rule.window_s:
            w.seconds.popleft()
        reason = self._reason(rule, w, bucket, new, port)
        now = time.time()
        if reason and now - w.fired >= rule.cooldown_s:
            w.fired = now
            dirs = "out" if d else "in"
            alert = Alert(rule.name, host, vm, row[10], port, dirs, reason, time.time_ns(), events)
            self.fired[rule.name] = self.fired.get(rule.name, 0) + 1
            self.recent.appendleft(alert)
            self._publish(alert)

    def _reason(self, rule: Rule, w: _Window, bucket: int, new: bool, port: int) -> str:
        if rule.first_seen:
            return f"first access to port {port:#x} by this VM" if new else ""
        if rule.distinct_ports:
            live = [p for p, b in w.ports.items() if b > bucket - rule.window_s]
            w.ports = {p: w.ports[p] for p in live}  # bounded: ports within the window
            if len(live) >= rule.distinct_ports:
                return f"{len(live)} distinct ports within {rule.window_s} s"
            return ""
        if rule.rate:
            rate = sum(n for _, n in w.seconds) / rule.window_s
            return f"{rate:.0f} events/s over {rule.window_s} s" if rate > rule.rate else ""
        return f"access to port {port:#x}"
