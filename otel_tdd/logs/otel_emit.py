"""Hands each record to the SDK's LoggerProvider, so OTLP carries it with its trace context."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from otel_tdd.logs.record import ATTRIBUTE_BLOCKS, BAGGAGE_IDS, EventDict
from otel_tdd.logs.safe import INT64, int_text, text_of, truncated
from otel_tdd.logs.steps import SPAN_KEY, get_current_context
from otel_tdd.redaction import MAX_STRING_CHARS, no_surrogates

if TYPE_CHECKING:
    from opentelemetry._logs import Logger as OTelLogger
    from opentelemetry._logs import LoggerProvider, SeverityNumber
    from opentelemetry.sdk._logs import Logger as SDKLogger
    from opentelemetry.sdk._logs import LogRecordLimits
    from opentelemetry.trace import SpanContext

    _FastTarget = tuple[SDKLogger, LogRecordLimits]

__all__ = ["EmitToOTel"]

# stdlib level -> OTel severity text; the numbers come with the logs API, imported by
# EmitToOTel only when OTLP logs are on.
_SEVERITY_TEXT = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARN",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "FATAL",
}


def _any_value(value: Any, depth: int = 0) -> Any:
    """Coerce to what an OTel log attribute may hold (primitives, lists, maps), bounded."""
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_STRING_CHARS else truncated(value)
    if isinstance(value, int):
        return value if value in INT64 else int_text(value)
    if isinstance(value, bytes):
        return value[:MAX_STRING_CHARS]
    if depth > 8:
        return text_of(value)[:MAX_STRING_CHARS]
    if isinstance(value, Mapping):
        # The SDK drops an empty key with a warning line per record: name it instead.
        return {(text_of(k) or "(empty)"): _any_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_any_value(v, depth + 1) for v in value]
    return text_of(value)[:MAX_STRING_CHARS]


_PLAIN_VALUES = (str, bool, int, float, type(None))


def _attribute_map(value: Mapping[Any, Any]) -> tuple[Any, bool]:
    """(the map attribute, whether it is plain): a plain one (the common case) is
    copied as is, anything else is coerced and left for the SDK to check."""
    for key, item in value.items():
        kind = type(item)
        if (
            kind not in _PLAIN_VALUES
            or type(key) is not str
            or not key
            or (kind is str and len(item) > MAX_STRING_CHARS)
            or (kind is int and item not in INT64)
        ):
            return _any_value(value), False
    # A copy: the record is exported later, the caller may change its dict meanwhile.
    return dict(value), True


class EmitToOTel:
    """Hands the record to the SDK's LoggerProvider (so OTLP carries it with its trace context).

    The SDK's own LoggingHandler re-derives everything from a ``logging.LogRecord``;
    we already hold the fields, so we build the OTel record directly and leave
    batching and export to the SDK's processors. Only what OTLP does not carry
    natively becomes an attribute: the trace and span ids travel in the record's
    context, the logger name is the instrumentation scope, the process and
    environment are on the Resource, the thread name is in the JSON line. The
    SDK's own loggers are skipped: an export failure logged and re-exported
    would feed itself.

    When every attribute is one we know valid (string ids, a plain ``data`` map)
    the SDK record is built without re-cleaning them (otel_tdd/logs/sdk_records.py);
    anything else goes through the SDK's own checks.
    """

    def __init__(self, provider: LoggerProvider) -> None:
        # Here, not at the top: the logs SDK (~6-40 ms to import) only when OTLP logs are on.
        from opentelemetry._logs import LogRecord, SeverityNumber

        from otel_tdd.logs import sdk_records

        self._provider = provider
        self._records = sdk_records
        # name -> (logger, (it as the SDK's Logger, its limits) when records may take the fast path)
        self._loggers: dict[str, tuple[OTelLogger, _FastTarget | None]] = {}
        self._fast_path: bool | None = None  # checked against the installed SDK on first use
        self._max_attributes = sys.maxsize
        # (Context, its span context, its baggage ids as attributes, whether all are str):
        # every record under one attached Context shares them, as in add_correlation.
        self._last: tuple[object, SpanContext, dict[str, Any], bool] = (
            None,
            trace.INVALID_SPAN_CONTEXT,
            {},
            True,
        )
        self._valid_record = sdk_records.ValidLogRecord
        self._valid_read_write = sdk_records.ValidReadWriteLogRecord
        self._bounded = sdk_records.bounded
        self._record = LogRecord
        self._severity: dict[int, tuple[SeverityNumber, str]] = {
            level: (getattr(SeverityNumber, text), text) for level, text in _SEVERITY_TEXT.items()
        }

    def _logger(self, name: str) -> tuple[OTelLogger, _FastTarget | None]:
        entry = self._loggers.get(name)
        if entry is None:
            # A lone surrogate in the scope name would fail the whole export batch.
            logger = self._provider.get_logger(no_surrogates(name))
            target = self._records.fast_target(logger)
            if target is not None and self._fast_path is None:
                self._fast_path = self._records.fast_path_works(*target)
            if target is not None and self._fast_path:
                # The provider's limits, the same for all its loggers; past the count
                # limit the SDK's path drops, counts and warns.
                maxlen = target[1].max_log_record_attributes
                self._max_attributes = sys.maxsize if maxlen is None else maxlen
            entry = self._loggers[name] = (logger, target if self._fast_path else None)
        return entry

    def _nearest(self, level: int) -> tuple[SeverityNumber, str]:
        for bound in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
            if level >= bound:
                return self._severity[bound]
        return self._severity[logging.DEBUG]

    def _context_entry(
        self, context: otel_context.Context, event: EventDict
    ) -> tuple[object, SpanContext, dict[str, Any], bool]:
        span: Any = context.get(SPAN_KEY) or trace.INVALID_SPAN
        ids = {key: event[key] for key in BAGGAGE_IDS if event.get(key) is not None}
        entry = (context, span.get_span_context(), ids, all(type(v) is str for v in ids.values()))
        self._last = entry
        return entry

    def __call__(self, name: str, level: int, event: EventDict) -> EventDict:
        if name.startswith("opentelemetry"):
            return event
        severity_number, severity_text = self._severity.get(level) or self._nearest(level)
        # Each attribute costs ~0.7 us of SDK validation: only what OTLP cannot carry.
        context = event.get("_context") or get_current_context()
        entry = self._last
        if entry[0] is not context:
            entry = self._context_entry(context, event)
        _, span_context, ids, valid = entry
        attributes = ids.copy()  # the record's own: processors may change their attributes
        for key in ATTRIBUTE_BLOCKS:
            value = event.get(key)
            if value:
                attributes[key], plain = _attribute_map(value)
                valid = valid and plain
        exception = event.get("exception")
        if exception:
            attributes["exception.stacktrace"] = exception
            valid = valid and type(exception) is str
        timestamp = event.get("_time_ns") or time.time_ns()
        logger, target = self._logger(name)
        if valid and target is not None and len(attributes) <= self._max_attributes:
            sdk_logger, limits = target
            # The SDK's Logger.emit takes a ReadWriteLogRecord as it is (its first branch),
            # though its signature only names the API LogRecord.
            sdk_logger.emit(
                self._valid_read_write(  # type: ignore[arg-type]
                    self._valid_record(
                        timestamp,
                        time.time_ns(),
                        context,
                        span_context,
                        severity_text,
                        severity_number,
                        event["message"],
                        self._bounded(attributes, limits),
                    ),
                    sdk_logger.resource,
                    sdk_logger.instrumentation_scope,
                    limits,
                )
            )
            return event
        logger.emit(
            self._record(
                timestamp=timestamp,
                context=context,
                severity_number=severity_number,
                severity_text=severity_text,
                body=event["message"],
                attributes=attributes,
            )
        )
        return event
