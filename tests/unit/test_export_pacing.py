"""Export pacing: the SDK's encoders see the whole batch, and give the GIL back while they run."""

from __future__ import annotations

import inspect
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_tdd
from otel_tdd import export_pacing, lifecycle
from otel_tdd.export_accounting import CountingLogExporter, CountingSpanExporter
from otel_tdd.export_pacing import PacedBatch, PacedExporter
from otel_tdd.testing import reset


@pytest.fixture(autouse=True)
def clean_state() -> Iterator[None]:
    reset()
    yield
    reset()


def spans(n: int) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("pacing")
    for i in range(n):
        with tracer.start_as_current_span(f"span {i}", attributes={"i": i, "route": "/items"}):
            pass
    return list(memory.get_finished_spans())


def log_records(n: int) -> list[ReadableLogRecord]:
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("pacing")
    for i in range(n):
        logger.emit(body=f"record {i}", attributes={"i": i})
    return list(memory.get_finished_logs())


def test_a_paced_batch_pauses_once_per_slice_of_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    pauses: list[float] = []
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(time, "sleep", pauses.append)
    monkeypatch.setattr(export_pacing, "SLICE_SECONDS", 0.0005)
    seen = []
    for item in PacedBatch(list(range(10))):
        seen.append(item)
        now[0] += 0.0003  # each item takes 0.3 ms to encode
    assert seen == list(range(10))
    # 0.5 ms slices of 0.3 ms items: a pause after every second item.
    assert pauses == [export_pacing.PAUSE_SECONDS] * 5


def test_pacing_off_never_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []
    monkeypatch.setattr(time, "sleep", pauses.append)
    monkeypatch.setattr(export_pacing, "SLICE_SECONDS", 0.0)
    batch = PacedBatch(["a", "b", "c"])
    assert list(batch) == ["a", "b", "c"] and len(batch) == 3 and batch[1] == "b"
    assert batch[1:] == ["b", "c"]
    assert pauses == []


def test_the_sdks_encoders_give_the_same_bytes_for_a_paced_batch() -> None:
    batch = spans(40)
    assert (
        encode_spans(PacedBatch(batch)).SerializePartialToString()
        == encode_spans(batch).SerializePartialToString()
    )
    records = log_records(40)
    assert encode_logs(PacedBatch(records)).SerializeToString() == (
        encode_logs(records).SerializeToString()
    )


class _Recorder:
    def __init__(self) -> None:
        self.batches: list[Any] = []
        self.shutdowns: list[float] = []

    def export(self, batch: Any) -> str:
        self.batches.append(batch)
        return "ok"

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        self.shutdowns.append(timeout_millis)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def test_the_paced_exporter_hands_on_the_batch_and_delegates_everything_else() -> None:
    inner = _Recorder()
    exporter = PacedExporter(inner)
    assert exporter.export(["x", "y"]) == "ok"
    assert isinstance(inner.batches[0], PacedBatch) and list(inner.batches[0]) == ["x", "y"]
    # The batch processor passes shutdown's timeout on only when the signature names it.
    assert "timeout_millis" in inspect.getfullargspec(exporter.shutdown).args
    exporter.shutdown(timeout_millis=5)
    assert inner.shutdowns == [5] and exporter.force_flush(1) is True


def test_a_batch_right_after_the_previous_one_is_encoded_in_one_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Back-to-back exports mean the queue is saturated: pausing would only lose items.
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    inner = _Recorder()
    exporter = PacedExporter(inner)
    exporter.export(["a"])  # the first batch: paced
    now[0] += export_pacing.BUSY_GAP_SECONDS / 2
    exporter.export(["b"])  # right after the first one ended: not paced
    now[0] += 1.0
    exporter.export(["c"])  # a second later: paced again
    assert [batch._pace for batch in inner.batches] == [True, False, True]


def test_configure_paces_the_otlp_span_and_log_exporters() -> None:
    runtime = otel_tdd.configure("pacing", endpoint="http://127.0.0.1:9", log_stream="none")
    assert runtime.tracer_provider is not None and runtime.logger_provider is not None
    span_processor = runtime.tracer_provider._active_span_processor._span_processors[0]
    assert isinstance(span_processor.span_exporter, CountingSpanExporter)
    assert isinstance(span_processor.span_exporter.inner, PacedExporter)
    log_processor = runtime.logger_provider._multi_log_record_processor._log_record_processors[0]
    exporter = log_processor._batch_processor._exporter
    assert isinstance(exporter, CountingLogExporter) and isinstance(exporter.inner, PacedExporter)
    lifecycle.shutdown(timeout_millis=100)


def _wake_up_lateness_ms(batch: list[ReadableSpan], samples: int) -> float:
    """Median lateness of 1 ms sleeps while another thread encodes ``batch`` over and over."""
    stop = threading.Event()

    def encode() -> None:
        while not stop.is_set():
            encode_spans(PacedBatch(batch)).SerializePartialToString()

    encoder = threading.Thread(target=encode, daemon=True)
    encoder.start()
    late = []
    try:
        for _ in range(samples):
            start = time.perf_counter()
            time.sleep(0.001)
            late.append(time.perf_counter() - start - 0.001)
    finally:
        stop.set()
        encoder.join()
    return statistics.median(late) * 1000


def test_a_thread_back_from_io_gets_the_gil_before_the_switch_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Unpaced, the median wake-up is about one switch interval late (5 ms): the encoder
    # keeps the GIL until CPython forces it out. Paced, it hands it over within a slice.
    # Side by side in one run, as a ratio: the machine's load moves both.
    batch = spans(256)
    monkeypatch.setattr(export_pacing, "SLICE_SECONDS", 0.0)
    unpaced_ms = _wake_up_lateness_ms(batch, samples=200)
    monkeypatch.setattr(export_pacing, "SLICE_SECONDS", 0.0005)
    paced_ms = _wake_up_lateness_ms(batch, samples=200)
    assert paced_ms < unpaced_ms / 2, (paced_ms, unpaced_ms)
    assert unpaced_ms > sys.getswitchinterval() * 1000 / 2, unpaced_ms  # the premise holds
