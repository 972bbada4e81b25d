"""The agent's domain core: hooks in, events out, independent of gRPC.

:class:`Agent` owns the hook table, the backend, the pipeline, the outbox and the publisher.
Servicers translate proto to calls on it; :meth:`Agent.run` is the whole agent as one task group
(backend, pipeline, publisher, and whatever the caller adds, such as the gRPC server).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import structlog

from agent import __version__
from agent.backends import Backend, load_backend
from agent.config import AgentConfig
from agent.errors import CapabilityError, HookError, HookSyntaxError
from agent.hooks.table import HookTable
from agent.model import Capability, check_id
from agent.notices import Notice, NoticeKind, Route
from agent.pipeline import Batch, Emit, Pipeline
from agent.publish import topics
from agent.publish.mqtt import Publisher
from agent.publish.outbox import Message, Outbox
from agent.publish.spool import Spool
from agent.state import HookStore, StoredHook
from agent.wire import agent_pb2, hooks_pb2

__all__ = ["Agent", "required_capabilities"]

log = structlog.get_logger("ioind")


def required_capabilities(spec: hooks_pb2.HookSpec) -> list[tuple[Capability, str]]:
    """What a hook needs from the backend, each with the field that needs it."""
    inbound = spec.direction == hooks_pb2.DIRECTION_IN
    needs = [(Capability.IN if inbound else Capability.OUT, "direction")]
    checks = [
        (spec.HasField("pid"), Capability.PID, "pid"),
        (spec.HasField("core"), Capability.CORE, "core"),
        (spec.stage in (hooks_pb2.STAGE_POST, hooks_pb2.STAGE_ALL), Capability.STAGE_POST, "stage"),
        (spec.HasField("set_value"), Capability.MODIFY, "set"),
        (spec.short_circuit, Capability.SKIP, "sc"),
        (spec.break_, Capability.BREAK, "break"),
    ]
    return needs + [(cap, name) for wanted, cap, name in checks if wanted]


class Agent:
    """One ioind: ``async with Agent(config) as agent: await agent.run()``."""

    def __init__(
        self,
        config: AgentConfig,
        backend: Backend | None = None,
        *,
        emit: Emit | None = None,
        side: Callable[[Notice], None] | None = None,
        persist: bool = True,
    ) -> None:
        """``emit`` and ``side`` replace MQTT for events and notices (``ioind local``)."""
        self.config = config
        self.host = config.host
        self.epoch = uuid.uuid4().hex[:16]
        self.started_ns = time.time_ns()
        self.table = HookTable()
        self.backend = backend or load_backend(config)
        self.store = HookStore(config.state_dir) if persist else None
        spool_path = Path(config.state_dir) / "spool.db" if persist else ":memory:"
        self.outbox = Outbox(Spool(spool_path, config.mqtt.spool_mb * 1024 * 1024))
        self.publisher = Publisher(self.host, config.mqtt, self.outbox, self.birth)
        self._side = side
        self.pipeline = Pipeline(
            self.table,
            emit or self._emit,
            batch_max=config.mqtt.batch_max,
            batch_ms=config.mqtt.batch_ms,
            notice=self.notice,
        )
        self.backend_ready = asyncio.Event()

    async def __aenter__(self) -> Agent:
        await self.backend.__aenter__()
        self._restore()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.backend.__aexit__(None, None, None)
        finally:
            self.pipeline.flush()  # partial batches reach the spool: nothing triggered is lost
            self.outbox.spool.close()

    # -- hooks -------------------------------------------------------------------------------

    def parse(self, command: str, hook_id: str | None = None) -> hooks_pb2.HookSpec:
        from agent.hooks.lang import parse

        return parse(command, hook_id=hook_id or None)

    def set_hook(
        self, spec: hooks_pb2.HookSpec, *, enabled: bool = True
    ) -> tuple[hooks_pb2.Hook, bool]:
        """Create or replace a hook after checking the backend can do what it asks."""
        try:
            check_id("hook id", spec.id)
        except ValueError as exc:
            raise HookSyntaxError(str(exc), spec.id) from None
        if spec.direction not in (hooks_pb2.DIRECTION_IN, hooks_pb2.DIRECTION_OUT):
            raise HookSyntaxError("direction must be IN or OUT", "direction")
        if spec.HasField("port") and spec.port > 0xFFFF:
            raise HookSyntaxError(
                f"port '{spec.port:#x}' is out of range 0..0xffff", str(spec.port)
            )
        for cap, field in required_capabilities(spec):
            if cap not in self.backend.capabilities:
                raise CapabilityError(cap, self.backend.name, field)
        hook, created = self.table.set(spec, enabled=enabled)
        self._changed("hook-set", spec.id)
        return hook, created

    def remove_hook(self, hook_id: str) -> hooks_pb2.Hook:
        hook = self.table.remove(hook_id)
        self._changed("hook-removed", hook_id)
        return hook

    def enable_hook(self, hook_id: str, enabled: bool) -> hooks_pb2.Hook:
        hook = self.table.set_enabled(hook_id, enabled)
        self._changed("hook-enabled" if enabled else "hook-disabled", hook_id)
        return hook

    def _changed(self, what: str, hook_id: str) -> None:
        log.info(what, hook_id=hook_id, hooks=len(self.table))
        self.backend.hooks_changed()
        if self.store is not None:
            self.store.save([StoredHook(h.spec.id, h.spec.command, h.enabled) for h in self.table])

    def _restore(self) -> None:
        """Hooks from the config file, then the saved ones (which win on the same id)."""
        stored = [StoredHook("", c, True) for c in self.config.hooks]
        stored += self.store.load() if self.store is not None else []
        for h in stored:
            try:
                spec = self.parse(h.command, h.id or None)
                self.table.set(spec, enabled=h.enabled)
            except HookError as exc:
                log.error("hook-not-restored", command=h.command, error=str(exc))
        if len(self.table):
            self._changed("hooks-restored", "*")

    # -- status ------------------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        p, o, pub = self.pipeline, self.outbox, self.publisher
        return {
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
        } | self.backend.counters()

    def status(self) -> agent_pb2.Status:
        return agent_pb2.Status(
            version=__version__,
            host=self.host,
            backend=self.backend.name,
            capabilities=sorted(self.backend.capabilities),
            hooks=list(self.table),
            counters=[
                agent_pb2.Counter(name=k, value=max(v, 0)) for k, v in self.counters().items()
            ],
            epoch=self.epoch,
            started_ns=self.started_ns,
            broker_connected=self.publisher.connected,
        )

    def birth(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "version": __version__,
            "backend": self.backend.name,
            "capabilities": sorted(self.backend.capabilities),
            "hooks": [h.spec.id for h in self.table],
            "epoch": self.epoch,
            "ts": time.time_ns(),
            "spool_depth": self.outbox.depth(),
        }

    # -- events and notices ------------------------------------------------------------------

    def _emit(self, hook_id: str, events: Batch) -> None:
        payload, ctype = topics.encode_batch(self.host, self.epoch, events, self.config.mqtt.format)
        topic = topics.events(self.host, hook_id)
        self.outbox.put_events(topic, payload, ctype, len(events))

    def notice(self, notice: Notice) -> None:
        """Route a notice to its topic (see ``agent.notices``)."""
        if self._side is not None:
            self._side(notice)
            return
        fields = notice.fields
        body = {"host": self.host, "kind": str(notice.kind), "ts": time.time_ns()} | dict(fields)
        if notice.route is Route.CONSOLE:
            vm_name = str(fields.get("vm_name") or fields.get("vm"))
            msg = Message(
                topics.console(self.host, vm_name), str(fields.get("text", "")).encode(), qos=0
            )
        elif notice.route is Route.BREAKS:
            msg = Message(
                topics.breaks(self.host), json.dumps(body).encode(), content_type="application/json"
            )
        else:
            log.info("notice", **body)
            msg = Message(
                topics.notices(self.host),
                json.dumps(body).encode(),
                content_type="application/json",
            )
        self.outbox.put_control(msg)

    async def _announce_drops(self) -> None:
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
                    self.notice(Notice(NoticeKind.DROPS, fields))
                    reported[stage] = total

    def drop_counts(self) -> dict[str, int]:
        """Events dropped so far, by stage (each a bounded queue with its own policy)."""
        return {"spool": self.outbox.dropped_events} | {
            k.removeprefix("dropped_"): v
            for k, v in self.backend.counters().items()
            if k.startswith("dropped_")
        }

    # -- running -----------------------------------------------------------------------------

    async def run(
        self, *extra: Callable[[], Coroutine[Any, Any, None]], publish: bool = True
    ) -> None:
        """Run backend, pipeline and publisher (and ``extra``) until cancelled or one fails."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(
                self.backend.run(self.table, self.pipeline, self.backend_ready.set),
                name="backend",
            )
            tg.create_task(self.pipeline.run(), name="pipeline")
            if publish:
                tg.create_task(self.publisher.run(), name="publisher")
                tg.create_task(self._announce_drops(), name="drops")
            for fn in extra:
                tg.create_task(fn())
