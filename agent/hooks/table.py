"""The hook table: pure, synchronous, and O(1) per access.

Mutations (set / remove / enable / disable) build a new immutable index and swap it in with one
assignment, so backends may call :meth:`HookTable.match` from vCPU or reader threads without a
lock: a reader sees either the old index or the new one, never half of each.

A change costs O(rules on the ports it touches), plus a C-speed copy of the port map: the new
index shares every other port's tuple with the old one. Only a change to an all-ports rule
rebuilds every port of its direction (each port's tuple includes the all-ports rules). The table
holds at most ``max_hooks`` hooks; one more is refused with :class:`HookLimitError`.

The index maps ``(direction, port)`` to the enabled rules for that port *plus* the all-ports
rules, newest first (HyperDbg runs the newest event first); a port with no rule of its own falls
back to the all-ports tuple. Filtering by pid and core then walks only that short tuple.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from agent.errors import HookLimitError, HookNotFound
from agent.hooks.requests import HookRequest, RequestInbox
from agent.model import SHOWN_ID, Direction, Stage, check_id, printable
from agent.script.hook import HookScript, Post
from agent.wire import hooks_pb2

__all__ = ["MAX_HOOKS", "HookRule", "HookTable", "rule_from_spec"]

MAX_HOOKS = 16_384  # default limit; config key `max_hooks`


@dataclass(frozen=True, slots=True)
class HookRule:
    """A hook as the matching code sees it (plain fields, no protobuf access on the hot path)."""

    id: str
    direction: Direction
    port: int | None
    pid: int | None
    core: int | None
    stage: Stage
    short_circuit: bool
    break_: bool
    set_value: int | None
    rate: int
    burst: int
    spec: hooks_pb2.HookSpec = field(compare=False, repr=False)
    order: int = 0  # insertion order; newer rules match first
    # condition { } / script { } compiled once, with the hook's globals (None without blocks)
    script: HookScript | None = field(default=None, compare=False, repr=False)

    def wants(self, pid: int, core: int) -> bool:
        return (self.pid is None or self.pid == pid) and (self.core is None or self.core == core)


def rule_from_spec(spec: hooks_pb2.HookSpec, order: int = 0, post: Post | None = None) -> HookRule:
    """Build a rule from a validated spec (``ValueError`` on an invalid id or direction);
    ``post`` takes its script's ``event_enable`` / ``event_disable`` / ``event_clear``."""
    check_id("hook id", spec.id)
    if spec.direction not in (hooks_pb2.DIRECTION_IN, hooks_pb2.DIRECTION_OUT):
        raise ValueError(f"hook '{printable(spec.id, SHOWN_ID)}': direction must be IN or OUT")
    return HookRule(
        id=spec.id,
        direction=Direction(spec.direction),
        port=spec.port if spec.HasField("port") else None,
        pid=spec.pid if spec.HasField("pid") else None,
        core=spec.core if spec.HasField("core") else None,
        stage=Stage(spec.stage or Stage.PRE),
        short_circuit=spec.short_circuit,
        break_=spec.break_,
        set_value=spec.set_value if spec.HasField("set_value") else None,
        rate=spec.rate,
        burst=spec.burst,
        spec=spec,
        order=order,
        script=HookScript(spec.id, spec.condition, spec.script, post=post)
        if spec.condition or spec.script
        else None,
    )


@dataclass(slots=True)
class _Entry:
    rule: HookRule
    enabled: bool
    created_ns: int
    hits: int = 0


@dataclass(frozen=True, slots=True)
class _Index:
    by_port: dict[tuple[Direction, int], tuple[HookRule, ...]]
    any_port: dict[Direction, tuple[HookRule, ...]]


_EMPTY = _Index({}, {Direction.IN: (), Direction.OUT: ()})

_Group = tuple[Direction, int | None]  # (direction, port); None: the all-ports rules


def _newer(rule: HookRule) -> int:
    return -rule.order


def _newest_first(rules: Iterable[HookRule]) -> tuple[HookRule, ...]:
    # Groups keep insertion order, which is nearly rule order (a re-enabled rule keeps its old
    # number): Timsort finds the long descending runs and takes about linear time.
    return tuple(sorted(rules, key=_newer))


class HookTable:
    """Hooks keyed by id; ``match`` answers which enabled hooks an access triggers."""

    def __init__(self, max_hooks: int = MAX_HOOKS) -> None:
        self.max_hooks = max_hooks
        self._entries: dict[str, _Entry] = {}
        # The enabled rules grouped as the index groups them; only the loop's thread reads it.
        self._groups: dict[_Group, dict[str, HookRule]] = {}
        self._index = _EMPTY
        self._order = 0
        self.version = 0  # bumped on every change; backends compare it to notice changes
        # scripts' event_enable / event_disable / event_clear, for the hook service to apply
        self.requests = RequestInbox()

    # -- queries -----------------------------------------------------------------------------

    def match(self, direction: Direction, port: int, pid: int, core: int) -> list[HookRule]:
        """The enabled rules this access triggers, newest first. Safe from any thread."""
        idx = self._index
        rules = idx.by_port.get((direction, port))
        if rules is None:
            rules = idx.any_port[direction]
        return [r for r in rules if r.wants(pid, core)]

    def hooked_ports(self, direction: Direction) -> frozenset[int] | None:
        """Ports with an enabled hook for ``direction``; ``None`` means every port is hooked."""
        idx = self._index
        if idx.any_port[direction]:
            return None
        return frozenset(p for (d, p) in idx.by_port if d is direction)

    def rules(self) -> tuple[HookRule, ...]:
        """Enabled rules, newest first. Safe from any thread."""
        entries = list(self._entries.values())  # one C-level copy: safe from another thread
        return tuple(sorted((e.rule for e in entries if e.enabled), key=lambda r: -r.order))

    def ids(self) -> list[str]:
        """Every hook's id (no message built: ListHooks pages sort these)."""
        return list(self._entries)

    def check_room(self, hook_id: str) -> None:
        """Raise :class:`HookLimitError` if setting ``hook_id`` would be one hook too many."""
        if hook_id not in self._entries and len(self._entries) >= self.max_hooks:
            raise HookLimitError(self.max_hooks)

    def get(self, hook_id: str) -> hooks_pb2.Hook:
        return self._to_proto(self._entry(hook_id))

    def __contains__(self, hook_id: object) -> bool:
        return hook_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[hooks_pb2.Hook]:
        return (self._to_proto(e) for e in list(self._entries.values()))

    # -- mutations ---------------------------------------------------------------------------

    def set(self, spec: hooks_pb2.HookSpec, *, enabled: bool = True) -> tuple[hooks_pb2.Hook, bool]:
        """Create or replace the hook ``spec.id``; returns (hook, created)."""
        old = self._entries.get(spec.id)
        if old is not None and old.rule.spec == spec and old.enabled == enabled:
            return self._to_proto(old), False
        self.check_room(spec.id)
        rule = rule_from_spec(spec, self._order + 1, self._post)
        self._order += 1
        created_ns = old.created_ns if old else time.time_ns()
        entry = _Entry(rule, enabled, created_ns, old.hits if old else 0)
        self._entries[spec.id] = entry
        self._reindex(old.rule if old and old.enabled else None, rule if enabled else None)
        return self._to_proto(entry), old is None

    def remove(self, hook_id: str) -> hooks_pb2.Hook:
        entry = self._entry(hook_id)
        del self._entries[hook_id]
        self._reindex(entry.rule if entry.enabled else None, None)
        return self._to_proto(entry)

    def set_enabled(self, hook_id: str, enabled: bool) -> hooks_pb2.Hook:
        entry = self._entry(hook_id)
        if entry.enabled != enabled:
            entry.enabled = enabled
            if enabled:
                self._reindex(None, entry.rule)
            else:
                self._reindex(entry.rule, None)
        return self._to_proto(entry)

    def _post(self, by: str, action: str, target: int | str) -> None:
        """A script's hook call, from whatever thread ran it (never blocks)."""
        self.requests.post(HookRequest(by, action, target))

    def count_hits(self, hook_id: str, n: int = 1) -> None:
        entry = self._entries.get(hook_id)
        if entry is not None:
            entry.hits += n

    # -- internals ---------------------------------------------------------------------------

    def _entry(self, hook_id: str) -> _Entry:
        try:
            return self._entries[hook_id]
        except KeyError:
            raise HookNotFound(hook_id) from None

    def _reindex(self, gone: HookRule | None, new: HookRule | None) -> None:
        """Swap in an index where only the groups of ``gone`` and ``new`` changed."""
        changed: set[_Group] = set()
        if gone is not None:
            changed.add(key := (gone.direction, gone.port))
            del self._groups[key][gone.id]
        if new is not None:
            changed.add(key := (new.direction, new.port))
            self._groups.setdefault(key, {})[new.id] = new
        idx = self._index
        any_port, by_port = dict(idx.any_port), dict(idx.by_port)
        for d in {d for d, port in changed if port is None}:  # every port of d includes them
            any_port[d] = _newest_first(self._groups.get((d, None), {}).values())
            changed |= {(d, p) for (dd, p) in by_port if dd is d}
        for d, port in changed:
            own = self._groups.get((d, port))
            if not own:
                self._groups.pop((d, port), None)
            if port is None:
                continue
            if own:
                mine, every = _newest_first(own.values()), any_port[d]
                by_port[(d, port)] = tuple(heapq.merge(mine, every, key=_newer)) if every else mine
            else:
                by_port.pop((d, port), None)
        self._index = _Index(by_port, any_port)
        self.version += 1

    @staticmethod
    def _to_proto(entry: _Entry) -> hooks_pb2.Hook:
        return hooks_pb2.Hook(
            spec=entry.rule.spec,
            enabled=entry.enabled,
            hits=entry.hits,
            created_ns=entry.created_ns,
        )
