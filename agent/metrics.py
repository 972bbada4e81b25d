"""The Prometheus endpoint: the agent's counters, read at scrape time (nothing on the hot path).

Metrics (prefix ``ioind_``): events matched / sequenced / published / suppressed, events dropped
by stage, spool depth (batches, bytes), outbox depth, broker connected, hooks, backend counters,
and a publish-to-PUBACK latency histogram fed from the publisher's bounded sample buffer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from agent.status import AgentStatus

__all__ = ["AgentCollector", "serve_metrics"]

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_COUNTERS = {
    "events_matched": "Events produced by hooks",
    "events_sequenced": "Events numbered (past the rate limit)",
    "events_published": "Events acknowledged by the broker",
    "events_suppressed": "Events suppressed by per-hook rate limits",
    "spool_disk_full": "Times the spool found the disk full (and dropped its oldest batches)",
}


def _calls(counters: dict[str, int]) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
    """gRPC calls running and refused over limits.max_rpcs / max_streams, by kind."""
    refused = CounterMetricFamily(
        "ioind_rpc_refused", "gRPC calls refused over their cap", labels=["kind"]
    )
    active = GaugeMetricFamily("ioind_rpc_active", "gRPC calls being served", labels=["kind"])
    for kind, prefix in (("unary", "rpc"), ("stream", "streams")):
        refused.add_metric([kind], counters.get(f"{prefix}_refused", 0))
        active.add_metric([kind], counters.get(f"{prefix}_active", 0))
    yield refused
    yield active


class AgentCollector(Collector):
    def __init__(self, status: AgentStatus) -> None:
        self._status = status
        self._lock = threading.Lock()
        self._buckets = [0] * (len(BUCKETS) + 1)
        self._sum = 0.0
        self._count = 0

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        status = self._status
        counters = status.counters()
        for name, doc in _COUNTERS.items():
            yield CounterMetricFamily(f"ioind_{name}", doc, value=counters.get(name, 0))
        dropped = CounterMetricFamily(
            "ioind_events_dropped", "Events dropped, by stage", labels=["stage"]
        )
        for stage, n in status.drop_counts().items():
            dropped.add_metric([stage], n)
        yield dropped
        batches, size = status.spool()
        yield GaugeMetricFamily("ioind_spool_batches", "Batches in the spool", value=batches)
        yield GaugeMetricFamily("ioind_spool_bytes", "Payload bytes in the spool", value=size)
        yield GaugeMetricFamily(
            "ioind_outbox_depth", "Messages not yet acknowledged", value=counters["outbox_depth"]
        )
        yield GaugeMetricFamily(
            "ioind_broker_connected", "1 when connected to the broker", value=int(status.connected)
        )
        yield GaugeMetricFamily("ioind_hooks", "Hooks in the table", value=status.hook_count())
        yield from _calls(counters)
        backend = GaugeMetricFamily("ioind_backend", "Backend counters", labels=["name"])
        for name, n in status.backend_counters().items():
            backend.add_metric([name], n)
        yield backend
        yield self._latency()

    def _latency(self) -> HistogramMetricFamily:
        with self._lock:
            for s in self._status.latency_samples():
                i = next((i for i, b in enumerate(BUCKETS) if s <= b), len(BUCKETS))
                self._buckets[i] += 1
                self._sum += s
                self._count += 1
            cum, acc = [], 0
            for b, n in zip((*map(str, BUCKETS), "+Inf"), self._buckets, strict=True):
                acc += n
                cum.append((b, acc))
            return HistogramMetricFamily(
                "ioind_publish_latency_seconds",
                "Publish to PUBACK",
                buckets=cum,
                sum_value=self._sum,
            )


def serve_metrics(status: AgentStatus, listen: str) -> int:
    """Start the endpoint in a daemon thread; returns the bound port."""
    host, _, port = listen.rpartition(":")
    registry = CollectorRegistry()
    registry.register(AgentCollector(status))
    server, _thread = start_http_server(int(port), addr=host or "0.0.0.0", registry=registry)
    bound: int = server.server_port
    return bound
