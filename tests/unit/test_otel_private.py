"""Every SDK-private access in otel_tdd._otel_private works on the installed opentelemetry-sdk.

An SDK upgrade that moves one of them fails here first, by name, instead of
silently losing queue-drop counting, re-configuration or the fast log path.
"""

from __future__ import annotations

import collections

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry._logs import LogRecord
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.sdk._logs import LoggerProvider, LogRecordLimits, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, InMemoryLogRecordExporter
from opentelemetry.sdk.metrics import Counter, Histogram
from opentelemetry.sdk.metrics.export import AggregationTemporality, ConsoleMetricExporter
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_tdd import _otel_private


def test_the_installed_sdk_is_one_we_checked() -> None:
    assert _otel_private.supported(), (
        f"opentelemetry-sdk {_otel_private.SDK_VERSION} is not in _otel_private.TESTED: "
        "run this file against it, then add it"
    )
    assert not _otel_private.supported("9.1.0")
    assert not _otel_private.supported("not-a-version")


def test_reset_api_globals_lets_a_second_provider_be_installed() -> None:
    before = trace.get_tracer_provider()
    first, second = TracerProvider(), TracerProvider()
    try:
        _otel_private.reset_api_globals()
        trace.set_tracer_provider(first)
        trace.set_tracer_provider(second)  # refused by the API: set once
        assert trace.get_tracer_provider() is first
        _otel_private.reset_api_globals()
        trace.set_tracer_provider(second)
        assert trace.get_tracer_provider() is second
    finally:
        _otel_private.reset_api_globals()
        trace.set_tracer_provider(before)
        first.shutdown()
        second.shutdown()


@pytest.mark.parametrize("kind", ["spans", "logs"])
def test_batch_queue_finds_and_replaces_the_bounded_deque(kind: str) -> None:
    processor = (
        BatchSpanProcessor(InMemorySpanExporter(), max_queue_size=7, max_export_batch_size=7)
        if kind == "spans"
        else BatchLogRecordProcessor(
            InMemoryLogRecordExporter(),  # type: ignore[no-untyped-call]
            max_queue_size=7,
            max_export_batch_size=7,
        )
    )
    try:
        found = _otel_private.batch_queue(processor)
        assert found is not None
        queue, hook = found
        assert isinstance(queue, collections.deque) and queue.maxlen == 7
        assert callable(hook.drop_items)
        replacement = collections.deque(queue, maxlen=7)
        _otel_private.replace_batch_queue(processor, replacement, hook)
        assert _otel_private.batch_queue(processor) == (replacement, hook)
    finally:
        processor.shutdown()


def test_batch_queue_of_something_else_warns_and_is_none() -> None:
    with pytest.warns(RuntimeWarning, match="queue overflow"):
        assert _otel_private.batch_queue(object()) is None


def test_exporter_preferences_are_what_the_exporter_was_built_with() -> None:
    buckets = ExplicitBucketHistogramAggregation((1.0, 2.0))
    exporter = ConsoleMetricExporter(
        preferred_temporality={Counter: AggregationTemporality.DELTA},
        preferred_aggregation={Histogram: buckets},
    )
    temporality, aggregation = _otel_private.exporter_preferences(exporter)
    assert temporality[Counter] is AggregationTemporality.DELTA
    assert aggregation[Histogram] is buckets


def test_log_record_limits_of_an_sdk_logger() -> None:
    limits = LogRecordLimits(max_attributes=5)
    logger = LoggerProvider(log_record_limits=limits).get_logger("x")  # type: ignore[call-arg]
    assert _otel_private.log_record_limits(logger) is limits
    assert _otel_private.log_record_limits(object()) is None


def test_set_bounded_items_and_the_sdk_record_built_from_an_api_one() -> None:
    attributes = BoundedAttributes(3, None, False, None)
    _otel_private.set_bounded_items(attributes, {"user_id": "u"})
    assert dict(attributes) == {"user_id": "u"}
    logger = LoggerProvider().get_logger("x")
    record = _otel_private.read_write_record(
        LogRecord(timestamp=1, body="m", attributes={"k": 1}),
        logger.resource,  # type: ignore[attr-defined]
        logger.instrumentation_scope,  # type: ignore[attr-defined]
        LogRecordLimits(),
    )
    assert isinstance(record, ReadWriteLogRecord)
    assert record.log_record.body == "m"
    assert dict(record.log_record.attributes or {}) == {"k": 1}


def test_the_context_keys_find_the_current_span_and_baggage() -> None:
    provider = TracerProvider()
    with provider.get_tracer("t").start_as_current_span("s") as span:
        token = context.attach(baggage.set_baggage("user_id", "u"))
        try:
            current = _otel_private.get_current_context()
            assert current is context.get_current()
            assert current.get(_otel_private.SPAN_KEY) is span
            assert dict(current.get(_otel_private.BAGGAGE_KEY) or {}) == {"user_id": "u"}
        finally:
            context.detach(token)
    provider.shutdown()


def test_the_suppress_key_is_the_one_the_sdk_exporters_set() -> None:
    token = context.attach(context.set_value(_otel_private.SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        assert not is_instrumentation_enabled()
    finally:
        context.detach(token)
