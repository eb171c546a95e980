"""A short-lived app's last metric export keeps its exemplars.

The SDK clears exemplars at each collection and the Collector's Prometheus exporter
keeps only the latest point: a flush followed by the shutdown's own final collection
sent a second, exemplar-less point that replaced the first (issue 16's caveat).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)

import otel_tdd
from otel_tdd import lifecycle
from otel_tdd.performance import performance_tracked


class _Recording(MetricExporter):
    def __init__(self) -> None:
        super().__init__()
        self.exports: list[MetricsData] = []

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **_: Any) -> Any:
        self.exports.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **_: Any) -> None:
        pass


def _exemplars(data: MetricsData, name: str) -> Sequence[Any]:
    return [
        exemplar
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
        for exemplar in point.exemplars
    ]


def test_the_last_export_at_shutdown_carries_the_exemplars() -> None:
    exporter = _Recording()
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    lifecycle.shutdown()
    otel_tdd.configure(
        service_name="exemplars-at-exit", _hooks=lifecycle.TestHooks(metric_readers=[reader])
    )

    @performance_tracked(name="checkout")
    def checkout() -> None:
        pass

    checkout()
    lifecycle.shutdown(timeout_millis=2_000)
    name = "tdd_operation_duration_seconds"
    with_points = [
        data
        for data in exporter.exports
        if any(
            metric.name == name
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        )
    ]
    assert with_points, "the duration histogram was never exported"
    assert _exemplars(with_points[-1], name), "the last export of the histogram has no exemplar"
