"""What the OTLP pipeline drops is counted: failed exports, queue overflow, and /health shows it."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics import Counter, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import otel_tdd
from otel_tdd import export_accounting, lifecycle, ops_server
from otel_tdd.export_accounting import (
    CountingLogExporter,
    CountingMetricExporter,
    CountingSpanExporter,
    ExportDeadline,
    count_queue_drops,
    dropped_totals,
)
from otel_tdd.health_check import HealthMonitor
from otel_tdd.testing import reset


@pytest.fixture(autouse=True)
def clean_state() -> Iterator[None]:
    reset()
    yield
    reset()


class Scripted(SpanExporter):
    """Returns the results it is given, in order; records what it was asked to export."""

    def __init__(self, *results: SpanExportResult | Exception) -> None:
        self.results = list(results)
        self.batches: list[int] = []
        self.shutdown_calls = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.batches.append(len(spans))
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    def shutdown(self) -> None:
        self.shutdown_calls += 1


def spans(n: int) -> list[ReadableSpan]:
    return [ReadableSpan(name=f"s{i}") for i in range(n)]


def delta(before: dict[str, int]) -> dict[str, int]:
    after = dropped_totals()
    return {signal: after[signal] - before[signal] for signal in after}


def test_a_failed_span_export_counts_its_batch_and_a_successful_one_nothing() -> None:
    inner = Scripted(SpanExportResult.SUCCESS, SpanExportResult.FAILURE)
    exporter = CountingSpanExporter(inner)
    before = dropped_totals()

    assert exporter.export(spans(3)) is SpanExportResult.SUCCESS
    assert exporter.export(spans(5)) is SpanExportResult.FAILURE

    assert delta(before) == {"traces": 5, "metrics": 0, "logs": 0}
    exporter.shutdown(timeout_millis=100)  # the inner one takes no timeout: not passed on
    assert inner.shutdown_calls == 1


def test_an_exporter_that_raises_is_counted_and_the_error_still_reaches_the_processor() -> None:
    exporter = CountingSpanExporter(Scripted(ConnectionError("refused")))
    before = dropped_totals()
    with pytest.raises(ConnectionError):
        exporter.export(spans(4))
    assert delta(before)["traces"] == 4


class ScriptedLogs(LogRecordExporter):
    def __init__(self, result: LogRecordExportResult) -> None:
        self.result = result
        self.timeouts: list[float] = []

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        return self.result

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.timeouts.append(timeout_millis)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def test_a_failed_log_export_counts_its_records_and_shutdown_passes_the_timeout_on() -> None:
    inner = ScriptedLogs(LogRecordExportResult.FAILURE)
    exporter = CountingLogExporter(inner)
    before = dropped_totals()
    assert exporter.export([object(), object()]) is LogRecordExportResult.FAILURE  # type: ignore[list-item]
    assert delta(before)["logs"] == 2
    exporter.shutdown(timeout_millis=1234)
    assert inner.timeouts == [1234]


class FailingMetrics(MetricExporter):
    def __init__(self) -> None:
        super().__init__(preferred_temporality={Counter: AggregationTemporality.DELTA})
        self.exports = 0

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        self.exports += 1
        return MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


def test_a_failed_metric_export_counts_its_data_points_and_keeps_the_exporters_preferences() -> (
    None
):
    inner = FailingMetrics()
    exporter = CountingMetricExporter(inner)
    assert exporter._preferred_temporality == {Counter: AggregationTemporality.DELTA}
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    counter = provider.get_meter("t").create_counter("c")
    for value in ("a", "b", "c"):
        counter.add(1, {"k": value})
    data = reader.get_metrics_data()
    assert data is not None
    before = dropped_totals()

    assert exporter.export(data) is MetricExportResult.FAILURE

    assert delta(before)["metrics"] == 3
    provider.shutdown()


class Blocked(SpanExporter):
    """Holds the batch processor's worker inside export() until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.release.wait(10)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.set()


def test_queue_overflow_in_the_sdks_batch_processor_is_counted() -> None:
    """Pins the SDK 1.45 hook we wrap: if a new SDK moves it, this fails (not the count)."""
    blocked = Blocked()
    processor = BatchSpanProcessor(blocked, max_queue_size=4, max_export_batch_size=1)
    assert count_queue_drops(processor, "traces") is True
    assert count_queue_drops(processor, "traces") is True  # idempotent: no double counting
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    tracer.start_span("first").end()
    assert blocked.entered.wait(5)  # the worker holds "first"; the queue is empty
    before = dropped_totals()

    for i in range(10):
        tracer.start_span(f"s{i}").end()

    assert delta(before)["traces"] == 6  # 10 offered, 4 fit
    blocked.release.set()
    provider.shutdown()
    after_shutdown = dropped_totals()
    tracer.start_span("late").end()  # offered after shutdown: dropped, and counted
    assert delta(after_shutdown)["traces"] == 1


def test_a_processor_without_the_hook_warns_instead_of_failing() -> None:
    with pytest.warns(RuntimeWarning, match="queue overflow"):
        assert count_queue_drops(object(), "traces") is False


def test_configure_wraps_every_otlp_exporter_and_counts_queue_drops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Nothing listens on port 9: the final metric export fails at once instead of retrying 10 s.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "0.2")
    runtime = otel_tdd.configure(
        "accounting", endpoint="http://127.0.0.1:9", log_stream="none", metrics_exporters="otlp"
    )
    assert runtime.tracer_provider is not None and runtime.logger_provider is not None
    span_processor = runtime.tracer_provider._active_span_processor._span_processors[0]
    assert isinstance(span_processor.span_exporter, CountingSpanExporter)
    assert isinstance(
        span_processor._batch_processor._metrics, export_accounting._CountingProcessorMetrics
    )
    log_processor = runtime.logger_provider._multi_log_record_processor._log_record_processors[0]
    assert isinstance(log_processor._batch_processor._exporter, CountingLogExporter)
    readers = runtime.meter_provider._metric_readers  # type: ignore[union-attr]
    assert any(
        isinstance(r._exporter, CountingMetricExporter) for r in readers if hasattr(r, "_exporter")
    )
    before = dropped_totals()
    lifecycle.shutdown(timeout_millis=100)
    assert delta(before)["metrics"] > 0  # the final export failed and was counted


def test_drops_show_in_the_metric_and_in_the_detailed_health_status() -> None:
    otel_tdd.configure("accounting", log_stream="none")
    monitor = HealthMonitor()
    before = monitor.get_detailed_status().body["telemetry_dropped"]

    export_accounting.record_dropped("traces", 7)

    body = monitor.get_detailed_status().body
    assert body["telemetry_dropped"]["traces"] == before["traces"] + 7
    text = ops_server.render_prometheus().decode()
    assert re.search(r'tdd_telemetry_dropped_total\{[^}]*signal="traces"[^}]*\} 7\.0', text)
    assert re.search(r'tdd_telemetry_dropped_total\{[^}]*signal="logs"[^}]*\} 0\.0', text)


class FailsSlowly(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        time.sleep(0.001)
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        pass


def test_queue_drops_are_counted_exactly_with_two_emitting_threads_and_a_busy_worker() -> None:
    """Every span either reached the exporter (which fails: counted) or was evicted (counted)."""
    processor = BatchSpanProcessor(
        CountingSpanExporter(FailsSlowly()),
        max_queue_size=64,
        max_export_batch_size=16,
        schedule_delay_millis=1,
    )
    count_queue_drops(processor, "traces")
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    per_thread = 20_000
    before = dropped_totals()

    def emit() -> None:
        for _ in range(per_thread):
            tracer.start_span("s").end()

    threads = [threading.Thread(target=emit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    provider.shutdown()

    assert delta(before)["traces"] == 2 * per_thread


class RetriesUntilShutdown(SpanExporter):
    """Like the OTLP exporters against a refused port: waits out a backoff unless shut down."""

    def __init__(self) -> None:
        self.stopping = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.stopping.wait(30)
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.stopping.set()


def test_an_export_deadline_interrupts_a_retry_wait_and_fails_later_batches_at_once() -> None:
    exporter = CountingSpanExporter(RetriesUntilShutdown())
    before = dropped_totals()
    deadline = ExportDeadline(0.2)
    started = time.monotonic()

    assert exporter.export(spans(5)) is SpanExportResult.FAILURE
    assert exporter.export(spans(3)) is SpanExportResult.FAILURE

    assert time.monotonic() - started < 5
    assert deadline.cancel() is True
    assert delta(before)["traces"] == 8
    exporter.shutdown()  # already shut down by the deadline: not twice


def test_an_export_deadline_that_is_cancelled_in_time_changes_nothing() -> None:
    deadline = ExportDeadline(30)
    exporter = CountingSpanExporter(Scripted(SpanExportResult.SUCCESS))
    assert exporter.export(spans(1)) is SpanExportResult.SUCCESS
    assert deadline.cancel() is False
    assert not exporter.abandoned


def test_shutdown_with_the_collector_down_keeps_to_its_timeout_and_counts_what_it_held(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The SDK's force_flush ignores its timeout; without the deadline this took 20 s and more.
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")
    runtime = otel_tdd.configure(
        "accounting", endpoint="http://127.0.0.1:9", log_stream="none", metrics_exporters="none"
    )
    for i in range(1_500):  # three batches of 512: each would retry for ~7 s
        runtime.tracer.start_span(f"s{i}").end()
    before = dropped_totals()
    started = time.monotonic()

    assert lifecycle.shutdown(timeout_millis=1_000) is False

    assert time.monotonic() - started < 5
    assert delta(before)["traces"] == 1_500
    assert "telemetry export abandoned after 1000 ms" in capsys.readouterr().err


def test_shutdown_says_telemetry_was_lost_even_when_the_final_flush_succeeds(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Spans pushed out of a full queue are lost although every export succeeds."""
    import http.server
    import threading

    class Sink(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "4")
        monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4")
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")
        runtime = otel_tdd.configure(
            "lossy",
            endpoint=f"http://127.0.0.1:{server.server_address[1]}",
            log_stream="none",
            metrics_exporters="none",
        )
        before = dropped_totals()
        for i in range(50):  # far more than the worker can take out of a queue of 4
            runtime.tracer.start_span(f"s{i}").end()
        assert lifecycle.shutdown(timeout_millis=5_000) is False
        lost = delta(before)["traces"]
        assert lost > 0
        err = capsys.readouterr().err
        assert f"telemetry was lost: {lost} traces" in err
        assert len([line for line in err.splitlines() if "otel-tdd" in line]) == 1
    finally:
        server.shutdown()
        server.server_close()
