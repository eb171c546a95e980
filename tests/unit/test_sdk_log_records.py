"""EmitToOTel builds the SDK's log records itself (otel_tdd/logs/sdk_records.py).

These tests pin what that relies on in opentelemetry-sdk 1.45.x, and prove the
records leaving the SDK are the ones its own ``Logger.emit(LogRecord(...))``
would have produced: an SDK upgrade that changes either fails here.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.sdk._logs import (
    LoggerProvider,
    LogRecordLimits,
    ReadableLogRecord,
    ReadWriteLogRecord,
)
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.trace import TracerProvider

from otel_tdd.logs import sdk_records as _sdk_log_records
from otel_tdd.logs.otel_emit import EmitToOTel
from otel_tdd.logs.steps import add_correlation
from otel_tdd.structured_logging import StructuredLogger
from otel_tdd.testing import capture_telemetry

TRACER = TracerProvider().get_tracer("test")


def provider_with(
    exporter: InMemoryLogRecordExporter,
    limits: LogRecordLimits | None = None,
    *,
    batch: bool = False,
) -> LoggerProvider:
    provider = LoggerProvider(shutdown_on_exit=False, log_record_limits=limits)
    processor = BatchLogRecordProcessor(exporter) if batch else SimpleLogRecordProcessor(exporter)
    provider.add_log_record_processor(processor)
    return provider


@pytest.fixture
def in_request() -> Iterator[None]:
    ctx = baggage.set_baggage("user_id", "user_123")
    ctx = baggage.set_baggage("session_id", "sess_789", ctx)
    ctx = baggage.set_baggage("request_id", "req_abc", ctx)
    token = context.attach(ctx)
    with TRACER.start_as_current_span("request"):
        yield
    context.detach(token)


def event(message: str = "User login successful", **fields: Any) -> dict[str, Any]:
    return add_correlation("app", logging.INFO, {"message": message, "_time_ns": 1_000, **fields})


def emit_both_ways(
    fields: dict[str, Any], limits: LogRecordLimits | None = None
) -> tuple[ReadableLogRecord, ReadableLogRecord, EmitToOTel]:
    """One record through EmitToOTel, and the same through the SDK's plain path."""
    ours_exporter, sdk_exporter = InMemoryLogRecordExporter(), InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    emit = EmitToOTel(provider_with(ours_exporter, limits))
    record = event(**fields)
    emit("app", logging.INFO, record)
    ids = ("user_id", "session_id", "request_id")
    attributes = {k: record[k] for k in ids if record[k] is not None} | {
        k: fields[k] for k in fields if k != "exception"
    }
    if "exception" in fields:
        attributes["exception.stacktrace"] = fields["exception"]
    provider_with(sdk_exporter, limits).get_logger("app").emit(
        LogRecord(
            timestamp=1_000,
            context=record["_context"],
            severity_number=SeverityNumber.INFO,
            severity_text="INFO",
            body="User login successful",
            attributes=attributes,
        )
    )
    (ours,), (sdk,) = ours_exporter.get_finished_logs(), sdk_exporter.get_finished_logs()
    return ours, sdk, emit


def encoded(record: ReadableLogRecord) -> bytes:
    record.log_record.observed_timestamp = 0  # the one field that differs by construction
    data: bytes = encode_logs([record]).SerializeToString()
    return data


def test_the_fast_path_is_taken_on_the_pinned_sdk(in_request: None) -> None:
    ours, _, emit = emit_both_ways({})
    assert emit._fast_path is True
    assert isinstance(ours.log_record, _sdk_log_records.ValidLogRecord)


def test_fast_path_works_holds_on_the_installed_sdk() -> None:
    logger = LoggerProvider(shutdown_on_exit=False).get_logger("x")
    target = _sdk_log_records.fast_target(logger)
    assert target is not None
    assert _sdk_log_records.fast_path_works(*target)


@pytest.mark.parametrize("count_limit", [0, 1])
def test_a_small_count_limit_neither_warns_at_the_probe_nor_disables_the_shortcut(
    count_limit: int,
) -> None:
    import warnings

    limits = LogRecordLimits(max_attributes=count_limit, max_log_record_attributes=count_limit)
    logger = LoggerProvider(shutdown_on_exit=False, log_record_limits=limits).get_logger("x")
    target = _sdk_log_records.fast_target(logger)
    assert target is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning here would be about nothing the app logged
        assert _sdk_log_records.fast_path_works(*target)
    assert limits.max_log_record_attributes == count_limit  # the provider's limits untouched


def test_the_sdk_internals_the_fast_path_relies_on() -> None:
    # BoundedAttributes keeps its items in _dict.
    attributes = BoundedAttributes(10, {"a": "b"}, False, None)
    assert attributes._dict == {"a": "b"}
    # ReadWriteLogRecord: these four fields, attributes wrapped in __post_init__.
    names = [field.name for field in dataclasses.fields(ReadWriteLogRecord)]
    assert names == ["log_record", "resource", "instrumentation_scope", "limits"]
    # Logger.emit takes a ReadWriteLogRecord as it is; the limits are the Logger's.
    limits = LogRecordLimits(max_attributes=7)
    logger = LoggerProvider(shutdown_on_exit=False, log_record_limits=limits).get_logger("x")
    assert logger._log_record_limits is limits  # type: ignore[attr-defined]


def test_records_equal_the_sdks_own_on_the_wire(in_request: None) -> None:
    ours, sdk, _ = emit_both_ways({"data": {"epic_id": 42, "login_method": "oauth", "ok": True}})
    assert isinstance(ours.log_record, _sdk_log_records.ValidLogRecord)  # the shortcut, compared
    assert encoded(ours) == encoded(sdk)
    assert ours.log_record.trace_id == trace.get_current_span().get_span_context().trace_id
    assert ours.log_record.span_id == trace.get_current_span().get_span_context().span_id
    assert ours.dropped_attributes == 0
    assert ours.resource == sdk.resource and ours.instrumentation_scope == sdk.instrumentation_scope


def test_exception_and_baggage_ids_travel_as_attributes(in_request: None) -> None:
    ours, sdk, _ = emit_both_ways({"exception": "Traceback...\nValueError: boom\n"})
    assert isinstance(ours.log_record, _sdk_log_records.ValidLogRecord)  # the shortcut, compared
    assert encoded(ours) == encoded(sdk)
    attributes = dict(ours.log_record.attributes or {})
    assert attributes == {
        "user_id": "user_123",
        "session_id": "sess_789",
        "request_id": "req_abc",
        "exception.stacktrace": "Traceback...\nValueError: boom\n",
    }


def test_outside_a_span_the_record_has_no_trace_context() -> None:
    ours, sdk, _ = emit_both_ways({})
    assert isinstance(ours.log_record, _sdk_log_records.ValidLogRecord)  # the shortcut, compared
    assert ours.log_record.trace_id == 0 and ours.log_record.span_id == 0
    assert encoded(ours) == encoded(sdk)


def test_values_the_sdk_must_clean_take_the_sdks_path(in_request: None) -> None:
    # A list in data: the SDK turns it into a tuple; we leave that to it.
    ours, sdk, _ = emit_both_ways({"data": {"tags": ["a", "b"]}})
    assert not isinstance(ours.log_record, _sdk_log_records.ValidLogRecord)
    assert dict(ours.log_record.attributes or {})["data"] == {"tags": ("a", "b")}
    assert encoded(ours) == encoded(sdk)


def test_a_non_string_baggage_value_takes_the_sdks_path() -> None:
    token = context.attach(baggage.set_baggage("user_id", 42))
    try:
        ours, sdk, _ = emit_both_ways({})
    finally:
        context.detach(token)
    assert not isinstance(ours.log_record, _sdk_log_records.ValidLogRecord)
    assert encoded(ours) == encoded(sdk)


def test_a_value_length_limit_is_applied_by_the_sdk(in_request: None) -> None:
    limits = LogRecordLimits(max_attribute_length=4)
    ours, sdk, emit = emit_both_ways({"data": {"k": "long value"}}, limits)
    assert emit._loggers["app"][1] is None  # no fast path under a length limit
    assert dict(ours.log_record.attributes or {})["user_id"] == "user"
    assert encoded(ours) == encoded(sdk)


def test_a_count_limit_drops_and_counts_as_the_sdk_does(in_request: None) -> None:
    limits = LogRecordLimits(max_attributes=2)
    with pytest.warns(UserWarning, match="dropped") as warned:
        ours, sdk, _ = emit_both_ways({}, limits)
    assert len(warned) == 2  # ours and the SDK's own
    assert ours.dropped_attributes == sdk.dropped_attributes == 1
    assert encoded(ours) == encoded(sdk)


def test_a_count_limit_of_zero_drops_every_attribute(in_request: None) -> None:
    with pytest.warns(UserWarning, match="dropped"):
        ours, sdk, _ = emit_both_ways({}, LogRecordLimits(max_attributes=0))
    assert ours.dropped_attributes == sdk.dropped_attributes == 3
    assert not ours.log_record.attributes


def test_an_sdk_that_changed_falls_back_to_its_own_path(
    in_request: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sdk_log_records, "fast_path_works", lambda *_: False)
    ours, sdk, emit = emit_both_ways({"data": {"k": 1}})
    assert emit._fast_path is False
    assert not isinstance(ours.log_record, _sdk_log_records.ValidLogRecord)
    assert encoded(ours) == encoded(sdk)


def test_the_callers_data_changed_later_does_not_change_the_queued_record(
    in_request: None,
) -> None:
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider = provider_with(exporter, batch=True)
    data = {"step": 1}
    EmitToOTel(provider)("app", logging.INFO, event(data=data))
    data["step"] = 2
    provider.force_flush()
    (record,) = exporter.get_finished_logs()
    assert dict(record.log_record.attributes or {})["data"] == {"step": 1}
    provider.shutdown()


def test_the_shallow_copy_the_batch_processor_makes_is_complete(in_request: None) -> None:
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider = provider_with(exporter, batch=True)
    EmitToOTel(provider)("app", logging.INFO, event())
    provider.force_flush()
    (record,) = exporter.get_finished_logs()
    original = record.log_record
    copied = copy.copy(original)
    assert type(copied) is type(original) and vars(copied) == vars(original)
    copied.context = context.Context()
    assert original.context is not copied.context
    provider.shutdown()


def test_end_to_end_through_configure(in_request: None) -> None:
    with capture_telemetry(log_level="INFO") as capture:
        StructuredLogger("app").info("hello", {"n": 1})
        logging.getLogger("app.std").warning("from stdlib")
        records = capture.otel_logs()
    assert [r.log_record.body for r in records] == ["hello", "from stdlib"]
    assert [r.log_record.severity_text for r in records] == ["INFO", "WARN"]
    for record in records:
        assert isinstance(record.log_record, _sdk_log_records.ValidLogRecord)
        assert record.log_record.trace_id == trace.get_current_span().get_span_context().trace_id
        assert dict(record.log_record.attributes or {})["request_id"] == "req_abc"
    assert encode_logs(records).SerializeToString()
