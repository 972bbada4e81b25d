"""From the pipeline to the outbox: each cut batch and each notice becomes one MQTT message.

:class:`BusRoute` is the agent's :class:`~agent.build.Output` when it publishes (``ioind local``
prints instead). Batches are encoded per ``[mqtt] format`` and spooled; notices go by their typed
:attr:`~agent.notices.Notice.route` (see :mod:`agent.topics` for the topics):

- console text, raw, QoS 0, on ``console/<vm_name>``;
- a break, as JSON, on ``breaks``;
- an audit record, as JSON, on ``audit`` (:mod:`agent.audit` logs it);
- any other kind, as JSON with ``host``, ``kind`` and ``ts``, on ``notices`` (and logged).
"""

from __future__ import annotations

import json
import time

import structlog

from agent import topics
from agent.notices import Notice, Route
from agent.pipeline import Batch
from agent.publish.outbox import Message, Outbox
from agent.publish.payload import encode_batch

__all__ = ["BusRoute"]

log = structlog.get_logger("ioind")


class BusRoute:
    """Encodes and queues what the pipeline hands on, for one agent boot (host, epoch)."""

    def __init__(self, host: str, epoch: str, outbox: Outbox, fmt: str) -> None:
        self._host = host
        self._epoch = epoch
        self._outbox = outbox
        self._format = fmt

    def emit(self, hook_id: str, batch: Batch) -> None:
        payload, ctype = encode_batch(self._host, self._epoch, batch, self._format)
        self._outbox.put_events(topics.events(self._host, hook_id), payload, ctype, len(batch))

    def notice(self, notice: Notice) -> None:
        self._outbox.put_control(self._message(notice))

    def _message(self, notice: Notice) -> Message:
        kind, fields = notice
        if notice.route is Route.CONSOLE:
            vm_name = str(fields.get("vm_name") or fields.get("vm"))
            text = str(fields.get("text", "")).encode()
            return Message(topics.console(self._host, vm_name), text, qos=0)
        body = {"host": self._host, "kind": str(kind), "ts": time.time_ns()} | dict(fields)
        topic = topics.breaks(self._host)
        if notice.route is Route.AUDIT:
            topic = topics.audit(self._host)
        elif notice.route is Route.NOTICES:
            log.info("notice", **body)
            topic = topics.notices(self._host)
        return Message(topic, json.dumps(body).encode(), content_type=topics.CT_JSON)
