"""Count what the OTLP pipeline drops, in ``tdd_telemetry_dropped_total{signal}`` and for /health.

DESIGN principle 3: the app never waits for the Collector, so when the Collector
is away telemetry has to go somewhere, and what is lost must be counted. The
SDK loses it in three places, and each is counted here without re-implementing
any of the SDK's batching:

* **A failed export.** The OTLP exporters retry a refused connection or a 429/5xx
  with backoff for up to ``OTEL_EXPORTER_OTLP_TIMEOUT`` (10 s), then return
  ``FAILURE`` and the batch is gone. :class:`CountingSpanExporter`,
  :class:`CountingLogExporter` and :class:`CountingMetricExporter` sit between
  the processor and the exporter, delegate everything, and count the items of a
  batch whose export fails or raises (a metric batch counts its data points;
  with the default cumulative temporality the next successful export carries the
  totals again, so those drops cost resolution rather than totals).
* **A full queue.** ``BatchSpanProcessor`` / ``BatchLogRecordProcessor`` keep at
  most ``OTEL_BSP_MAX_QUEUE_SIZE`` / ``OTEL_BLRP_MAX_QUEUE_SIZE`` items (2048);
  past that ``emit`` pushes out the oldest one. The SDK (1.45) reports each such
  drop, and each item offered after the processor's shutdown, to the
  ``drop_items(count, error_type)`` hook of its ``ProcessorMetricsT``
  (``opentelemetry.sdk._shared_internal``), the object behind its own opt-in
  ``otel.sdk.processor.*.processed`` metric. :func:`count_queue_drops` wraps that
  hook. It is the one private attribute we touch (``_batch_processor._metrics``):
  if a later SDK moves it, the wrapper is not installed, a warning says so, and
  ``tests/unit/test_export_accounting.py`` fails, rather than drops silently
  going uncounted.
* **A log record that fails inside our own pipeline** (a broken stream): counted
  by ``sdk._ErrorReporter`` through :func:`record_dropped`.

:func:`dropped_totals` holds the running totals since the process started, which
the detailed health status (``GET /health``) shows as ``telemetry_dropped``.
"""

from __future__ import annotations

import inspect
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

if TYPE_CHECKING:
    # The logs SDK stays unimported unless a log exporter is configured (start-up budget).
    from opentelemetry.sdk._logs import ReadableLogRecord
    from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

    _LogExporterBase = LogRecordExporter
else:
    _LogExporterBase = object

__all__ = [
    "SIGNALS",
    "CountingLogExporter",
    "CountingMetricExporter",
    "CountingSpanExporter",
    "count_queue_drops",
    "dropped_totals",
    "record_dropped",
]

SIGNALS = ("traces", "metrics", "logs")

_lock = threading.Lock()
_totals = dict.fromkeys(SIGNALS, 0)


def record_dropped(signal: str, count: int) -> None:
    """Count ``count`` items of ``signal`` as lost. Never raises (it runs on failure paths)."""
    if count <= 0:
        return
    with _lock:
        _totals[signal] = _totals.get(signal, 0) + count
    try:
        from otel_tdd.metrics import catalog

        catalog.telemetry_dropped.add(count, {"signal": signal})
    except Exception:  # counting a loss must not become a second failure
        pass


def dropped_totals() -> dict[str, int]:
    """Items dropped per signal since the process started (a copy)."""
    with _lock:
        return dict(_totals)


def _shutdown_inner(inner: Any, timeout_millis: float, kwargs: dict[str, Any]) -> None:
    """Pass the processor's remaining time on only to an exporter that takes it."""
    if "timeout_millis" in inspect.getfullargspec(inner.shutdown).args:
        inner.shutdown(timeout_millis=timeout_millis, **kwargs)
    else:
        inner.shutdown()


class CountingSpanExporter(SpanExporter):
    """Delegates to ``inner``; counts the spans of every batch whose export fails."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception:
            record_dropped("traces", len(spans))
            raise  # the batch processor logs it, as it would without us
        if result is not SpanExportResult.SUCCESS:
            record_dropped("traces", len(spans))
        return result

    # timeout_millis in the signature: BatchProcessor.shutdown looks for it by name.
    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        _shutdown_inner(self.inner, timeout_millis, kwargs)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


class CountingLogExporter(_LogExporterBase):
    """Delegates to ``inner``; counts the records of every batch whose export fails.

    A ``LogRecordExporter`` by shape rather than by base class: subclassing would
    import the logs SDK whenever otel_tdd is configured, logs exporter or not.
    """

    def __init__(self, inner: LogRecordExporter) -> None:
        self.inner = inner

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        try:
            result = self.inner.export(batch)
        except Exception:
            record_dropped("logs", len(batch))
            raise
        if result is not LogRecordExportResult.SUCCESS:
            record_dropped("logs", len(batch))
        return result

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        _shutdown_inner(self.inner, timeout_millis, kwargs)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


def _data_points(metrics_data: MetricsData) -> int:
    return sum(
        len(metric.data.data_points)
        for resource_metrics in metrics_data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
    )


class CountingMetricExporter(MetricExporter):
    """Delegates to ``inner``; counts the data points of every export that fails.

    The reader asks the exporter for its preferred temporality and aggregation:
    the wrapper reports the inner exporter's, so wrapping changes nothing on the wire.
    """

    def __init__(self, inner: MetricExporter) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        try:
            result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception:
            record_dropped("metrics", _safe_count(metrics_data))
            raise
        if result is not MetricExportResult.SUCCESS:
            record_dropped("metrics", _safe_count(metrics_data))
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def _safe_count(metrics_data: MetricsData) -> int:
    try:
        return _data_points(metrics_data)
    except Exception:
        return 1


class _CountingProcessorMetrics:
    """The SDK's ``ProcessorMetricsT`` hook, plus our count of every dropped item."""

    def __init__(self, inner: Any, signal: str) -> None:
        self._inner = inner
        self._signal = signal

    def register_queue_size(self, get_queue_size: Callable[[], int]) -> None:
        self._inner.register_queue_size(get_queue_size)

    def drop_items(self, count: int, error_type: str = "queue_full") -> None:
        record_dropped(self._signal, count)
        self._inner.drop_items(count, error_type)

    def finish_items(self, count: int) -> None:
        self._inner.finish_items(count)


def count_queue_drops(processor: Any, signal: str) -> bool:
    """Count the items a BatchSpanProcessor / BatchLogRecordProcessor drops from its queue.

    True when the hook was installed; False (with a warning) when this SDK's
    processor does not have the ``_batch_processor._metrics`` hook of SDK 1.45.
    """
    batch = getattr(processor, "_batch_processor", None)
    hook = getattr(batch, "_metrics", None)
    if batch is None or hook is None or not callable(getattr(hook, "drop_items", None)):
        warnings.warn(
            f"otel-tdd cannot count queue overflow of {type(processor).__name__} with this "
            "opentelemetry-sdk version: tdd_telemetry_dropped_total counts failed exports only",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    if not isinstance(hook, _CountingProcessorMetrics):
        batch._metrics = _CountingProcessorMetrics(hook, signal)
    return True
