"""pytest plugin: capture spans, log records, JSON lines and metrics in memory.

Registered through the ``pytest11`` entry point, so any project with otel-tdd
installed gets the ``otel_capture`` fixture (Logfire's ``capfire``, for otel-tdd)::

    def test_checkout(otel_capture):
        checkout(cart)
        assert otel_capture.span_names() == ["checkout"]
        record = otel_capture.records()[0]
        assert record["correlation_id"] == format(otel_capture.spans()[0].context.trace_id, "032x")

The fixture re-configures otel-tdd with in-memory exporters for one test and
shuts it down afterwards, so tests do not leak telemetry into each other.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_tdd import _runtime, lifecycle

__all__ = [
    "Capture",
    "capture_telemetry",
    "log_record_schema",
    "otel_capture",
    "reset",
    "validate_record",
]


def reset() -> None:
    """Shut down and forget: the process is as if otel-tdd had never been configured."""
    lifecycle.shutdown()
    _runtime.install(None)


def log_record_schema() -> dict[str, Any]:
    """The published JSON Schema of one stdout log line."""
    from importlib.resources import files

    text = files("otel_tdd").joinpath("schemas/log_record.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_record(record: Mapping[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when a record breaks the schema (needs jsonschema)."""
    import jsonschema

    jsonschema.validate(dict(record), log_record_schema())


class _Stream(io.BytesIO):
    """A binary stream that also looks like a text stream with ``.buffer`` (as sys.stdout does)."""

    @property
    def buffer(self) -> io.BytesIO:
        return self


@dataclass
class Capture:
    span_exporter: InMemorySpanExporter
    log_exporter: InMemoryLogRecordExporter
    metric_reader: InMemoryMetricReader
    stream: _Stream
    settings: dict[str, Any] = field(default_factory=dict)

    def spans(self) -> list[ReadableSpan]:
        return list(self.span_exporter.get_finished_spans())

    def span_names(self) -> list[str]:
        return [span.name for span in self.spans()]

    def otel_logs(self) -> list[ReadableLogRecord]:
        return list(self.log_exporter.get_finished_logs())

    def lines(self) -> list[str]:
        # Split on "\n" only: U+2028/U+2029/U+0085 inside a JSON string are not line ends.
        text = self.stream.getvalue().decode()
        return [line for line in text.split("\n") if line.strip()]

    def records(self, *, validate: bool = True) -> list[dict[str, Any]]:
        """Every JSON log line written so far, parsed (and checked against the schema)."""
        records = [json.loads(line) for line in self.lines()]
        if validate:
            for record in records:
                validate_record(record)
        return records

    def metrics(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """Metric name -> [(attributes, point)] from one collection."""
        data = self.metric_reader.get_metrics_data()
        out: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        if data is None:
            return out
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    points = out.setdefault(metric.name, [])
                    for point in metric.data.data_points:
                        points.append((dict(point.attributes or {}), point))
        return out

    def metric_value(self, name: str, attributes: Mapping[str, Any] | None = None) -> float:
        """Sum (counter/gauge value or histogram count) over points matching ``attributes``."""
        total = 0.0
        for point_attributes, point in self.metrics().get(name, []):
            if attributes and any(point_attributes.get(k) != v for k, v in attributes.items()):
                continue
            total += float(point.value if hasattr(point, "value") else point.count)
        return total

    def clear(self) -> None:
        self.span_exporter.clear()
        self.log_exporter.clear()
        self.stream.seek(0)
        self.stream.truncate()


@pytest.fixture
def otel_capture() -> Iterator[Capture]:
    """otel-tdd configured with in-memory exporters for one test."""
    with capture_telemetry() as capture:
        yield capture


class capture_telemetry:  # noqa: N801 - used like a function, as contextlib's helpers are
    """Context manager behind ``otel_capture``; usable outside pytest too."""

    def __init__(self, **overrides: Any) -> None:
        self.overrides = {"service_name": "otel-tdd-test", "log_level": "DEBUG", **overrides}

    def __enter__(self) -> Capture:
        lifecycle.shutdown()
        capture = Capture(
            span_exporter=InMemorySpanExporter(),
            log_exporter=InMemoryLogRecordExporter(),  # type: ignore[no-untyped-call]
            metric_reader=InMemoryMetricReader(),
            stream=_Stream(),
            settings=self.overrides,
        )
        hooks = lifecycle.TestHooks(
            span_processors=[SimpleSpanProcessor(capture.span_exporter)],
            log_processors=[SimpleLogRecordProcessor(capture.log_exporter)],
            metric_readers=[capture.metric_reader],
            stream=capture.stream,
        )
        lifecycle.configure(_hooks=hooks, **self.overrides)
        return capture

    def __exit__(self, *_exc: object) -> None:
        lifecycle.shutdown()
