"""Prometheus metrics: read from the live counters at scrape time (no double bookkeeping).

ioinagg_events_total, ioinagg_duplicates_total (dedupe hits), ioinagg_batches_total,
ioinagg_skipped_total{kind}, ioinagg_store_errors_total, ioinagg_lag_seconds (now minus the
newest event counted), ioinagg_store_seconds (commit latency histogram), ioinagg_alerts_total{rule},
ioinagg_alerts_dropped_total, ioinagg_broker_connected.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from aggregator.config import split_address
from aggregator.ingest import Stats

__all__ = ["AggCollector", "serve_metrics"]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class AggCollector(Collector):
    def __init__(
        self,
        stats: Stats,
        alerts: Callable[[], dict[str, int]],
        extra: Callable[[], dict[str, float]],
    ) -> None:
        self._stats = stats
        self._alerts = alerts
        self._extra = extra
        self._counts = [0] * (len(_BUCKETS) + 1)
        self._sum = 0.0

    def collect(self) -> Iterator[Metric]:
        s = self._stats
        yield CounterMetricFamily("ioinagg_events", "Events counted", value=s.events)
        yield CounterMetricFamily(
            "ioinagg_duplicates", "Events dropped as already counted", value=s.duplicates
        )
        yield CounterMetricFamily("ioinagg_batches", "Batches decoded", value=s.batches)
        skipped = CounterMetricFamily("ioinagg_skipped", "Payloads skipped", labels=["kind"])
        for kind, n in sorted(s.junk.items()):
            skipped.add_metric([kind], n)
        yield skipped
        yield CounterMetricFamily("ioinagg_store_errors", "Failed commits", value=s.store_errors)
        lag = (time.time_ns() - s.newest_ts) / 1e9 if s.newest_ts else 0.0
        yield GaugeMetricFamily("ioinagg_lag_seconds", "Now minus the newest event", value=lag)
        yield self._latency()
        alerts = CounterMetricFamily("ioinagg_alerts", "Alerts fired", labels=["rule"])
        for rule, n in sorted(self._alerts().items()):
            alerts.add_metric([rule], n)
        yield alerts
        for name, value in self._extra().items():
            yield GaugeMetricFamily(f"ioinagg_{name}", name.replace("_", " "), value=value)

    def _latency(self) -> Metric:
        for x in self._stats.store_seconds[:]:
            i = next((k for k, b in enumerate(_BUCKETS) if x <= b), len(_BUCKETS))
            self._counts[i] += 1
            self._sum += x
        self._stats.store_seconds.clear()
        cumulative, total = [], 0
        for bound, n in zip((*map(str, _BUCKETS), "+Inf"), self._counts, strict=True):
            total += n
            cumulative.append((bound, total))
        return HistogramMetricFamily(
            "ioinagg_store_seconds", "Commit latency", buckets=cumulative, sum_value=self._sum
        )


def serve_metrics(address: str, collector: AggCollector) -> int:
    """Serve ``/metrics`` on ``address`` (port 0: any free port); returns the port."""
    host, port = split_address("metrics", address)
    registry = CollectorRegistry()
    registry.register(collector)
    server, _ = start_http_server(port, host, registry)
    return int(server.server_port)
