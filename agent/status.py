"""What a running agent reports about itself: counters, drops, GetStatus, the birth message.

:class:`AgentStatus` reads the parts' own counters at the moment it is asked (nothing on the hot
path); GetStatus, the retained birth, the Prometheus endpoint and the drop notices all read it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agent import version
from agent.backends import Backend
from agent.hooks.table import HookTable
from agent.notices import Notice, NoticeKind
from agent.pipeline import Pipeline
from agent.publish.mqtt import Publisher
from agent.publish.outbox import Outbox
from agent.rpc.limits import CallCounts
from agent.rpc.paging import bounded
from agent.wire import agent_pb2

__all__ = ["AgentStatus", "Identity"]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who this agent boot is: host id, epoch (new every boot), start time."""

    host: str
    epoch: str
    started_ns: int

    @classmethod
    def new(cls, host: str) -> Identity:
        return cls(host, uuid.uuid4().hex[:16], time.time_ns())


class AgentStatus:
    """Counters and reports over the parts of one publishing agent."""

    def __init__(
        self,
        identity: Identity,
        table: HookTable,
        backend: Backend,
        pipeline: Pipeline,
        outbox: Outbox,
        publisher: Publisher,
        labels: Mapping[str, str] | None = None,
        calls: CallCounts | None = None,
    ) -> None:
        self.identity = identity
        self.labels = dict(labels or {})
        self.address = ""  # the advertised gRPC address, once the server is bound
        self._table = table
        self._backend = backend
        self._pipeline = pipeline
        self._outbox = outbox
        self._publisher = publisher
        self._calls = calls if calls is not None else CallCounts()

    @property
    def connected(self) -> bool:
        return self._publisher.connected

    def hook_count(self) -> int:
        return len(self._table)

    def spool(self) -> tuple[int, int]:
        """Batches and payload bytes waiting in the spool."""
        return self._outbox.spool.batches, self._outbox.spool.bytes

    def latency_samples(self) -> list[float]:
        """Publish-to-PUBACK latencies (s) since the last call."""
        return self._publisher.latency.drain()

    def backend_counters(self) -> dict[str, int]:
        return self._backend.counters()

    def counters(self) -> dict[str, int]:
        p, o, pub = self._pipeline, self._outbox, self._publisher
        return (
            {
                "events_matched": p.matched,
                "events_sequenced": p.seq,
                "events_suppressed": p.suppressed,
                "events_published": pub.published_events,
                "events_dropped_spool": o.dropped_events,
                "spool_batches": o.spool.batches,
                "spool_bytes": o.spool.bytes,
                "control_dropped": o.dropped_control,
                "outbox_depth": o.depth(),
                "broker_connects": pub.connects,
                "messages_published": pub.published_messages,
                "batches_replayed_paced": pub.caught_up,
                "spool_recovered_batches": o.spool.recovered_batches,
                "spool_disk_full": o.spool.disk_full,
                "spool_on_disk": int(o.spool.on_disk),
            }
            | self._calls.as_counters()
            | self._table.requests.counters()
            | self._backend.counters()
        )

    def drop_counts(self) -> dict[str, int]:
        """Events dropped so far, by stage (each a bounded queue with its own policy)."""
        return {"spool": self._outbox.dropped_events} | {
            k.removeprefix("dropped_"): v
            for k, v in self._backend.counters().items()
            if k.startswith("dropped_")
        }

    def status(self) -> agent_pb2.Status:
        """The agent's report; at most ``MAX_PAGE_BYTES`` of hooks (ListHooks pages them all)."""
        me = self.identity
        hooks, omitted = bounded(iter(self._table), len(self._table))
        return agent_pb2.Status(
            version=version(),
            host=me.host,
            backend=self._backend.name,
            capabilities=sorted(self._backend.capabilities),
            hooks=hooks,
            hooks_omitted=omitted,
            counters=[
                agent_pb2.Counter(name=k, value=max(v, 0)) for k, v in self.counters().items()
            ],
            epoch=me.epoch,
            started_ns=me.started_ns,
            broker_connected=self._publisher.connected,
            labels=self.labels,
            address=self.address,
        )

    def birth(self) -> dict[str, Any]:
        return {
            "host": self.identity.host,
            "version": version(),
            "backend": self._backend.name,
            "capabilities": sorted(self._backend.capabilities),
            "hooks": [h.spec.id for h in self._table],
            "epoch": self.identity.epoch,
            "ts": time.time_ns(),
            "spool_depth": self._outbox.depth(),
            "address": self.address,
            "labels": self.labels,
        }

    async def announce_drops(self, notice: Callable[[Notice], None]) -> None:
        """Once a second at most: events dropped at each stage since the last notice."""
        reported: dict[str, int] = {}
        since: dict[str, int] = {}
        while True:
            await asyncio.sleep(1.0)
            for stage, total in self.drop_counts().items():
                if total > reported.get(stage, 0):
                    since.setdefault(stage, time.time_ns())
                    fields = {
                        "stage": stage,
                        "events": total - reported.get(stage, 0),
                        "total": total,
                        "since": since[stage],
                    }
                    notice(Notice(NoticeKind.DROPS, fields))
                    reported[stage] = total
