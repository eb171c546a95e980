"""The SDK's log records, built from fields we already hold and know are valid.

Half the cost of emitting a record was the SDK re-checking what the pipeline had settled
(docs/logging.md, "SDK internals"). :func:`fast_path_works` compares one record built
both ways at start-up. Private accesses go through :mod:`otel_tdd._otel_private`;
:func:`_same` checks the record layout.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from typing import Any

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk._logs import Logger as SDKLogger
from opentelemetry.sdk._logs import LogRecordLimits, ReadWriteLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from otel_tdd import _otel_private

__all__ = [
    "ValidLogRecord",
    "ValidReadWriteLogRecord",
    "bounded",
    "fast_path_works",
    "fast_target",
]

_RECORD_FIELDS = frozenset(
    (
        "timestamp",
        "observed_timestamp",
        "context",
        "trace_id",
        "span_id",
        "trace_flags",
        "severity_text",
        "severity_number",
        "body",
        "attributes",
        "event_name",
        "exception",
    )
)
_READ_WRITE_FIELDS = ("log_record", "resource", "instrumentation_scope", "limits")


class ValidLogRecord(LogRecord):
    """An API ``LogRecord`` from the span context we already hold.

    The same instance fields as ``LogRecord.__init__`` sets. Its shallow copy (the
    batch processor copies every record to drop the context) is one dict copy
    instead of ``copy.copy``'s generic ``__reduce_ex__`` path.
    """

    def __init__(
        self,
        timestamp: int,
        observed_timestamp: int,
        context: Context,
        span_context: SpanContext,
        severity_text: str,
        severity_number: SeverityNumber,
        body: Any,
        attributes: BoundedAttributes,
    ) -> None:
        # Not super().__init__: it would look the span up in the context again.
        self.timestamp = timestamp
        self.observed_timestamp = observed_timestamp
        self.context = context
        self.trace_id = span_context.trace_id
        self.span_id = span_context.span_id
        self.trace_flags = span_context.trace_flags
        self.severity_text = severity_text
        self.severity_number = severity_number
        self.body = body
        self.attributes = attributes
        self.event_name = None
        self.exception = None

    def __copy__(self) -> ValidLogRecord:
        copied = object.__new__(ValidLogRecord)
        copied.__dict__.update(self.__dict__)
        return copied


class ValidReadWriteLogRecord(ReadWriteLogRecord):
    """A ``ReadWriteLogRecord`` whose attributes are already a ``BoundedAttributes``.

    The dataclass ``__init__`` and ``__post_init__`` would clean every attribute
    again; ``Logger.emit`` accepts any ``ReadWriteLogRecord`` as it is.
    """

    def __init__(
        self,
        log_record: LogRecord,
        resource: Resource,
        instrumentation_scope: InstrumentationScope,
        limits: LogRecordLimits,
    ) -> None:  # pylint: disable=super-init-not-called
        self.log_record = log_record
        self.resource = resource
        self.instrumentation_scope = instrumentation_scope
        self.limits = limits


def bounded(attributes: dict[str, Any], limits: LogRecordLimits) -> BoundedAttributes:
    """``BoundedAttributes`` holding ``attributes`` as they are, in its private ``_dict``.

    The caller checked them valid and within ``limits`` (no more than
    ``max_attributes``, no length limit): nothing to clean, drop or warn about.
    """
    result = BoundedAttributes(limits.max_log_record_attributes, None, False, None)
    _otel_private.set_bounded_items(result, attributes)
    return result


def fast_target(logger: object) -> tuple[SDKLogger, LogRecordLimits] | None:
    """(the SDK Logger, its record limits) when the fast path may skip cleaning.

    None (take the SDK's own path) for another Logger implementation or when a
    value length limit is configured: then the SDK must truncate strings.
    """
    if not isinstance(logger, SDKLogger):
        return None
    limits = _otel_private.log_record_limits(logger)
    if (
        not isinstance(limits, LogRecordLimits)
        or limits.max_log_record_attribute_length is not None
    ):
        return None
    return logger, limits


def _settings(attributes: object) -> dict[str, Any]:
    return {key: value for key, value in vars(attributes).items() if key not in ("_dict", "_lock")}


def fast_path_works(logger: SDKLogger, limits: LogRecordLimits) -> bool:
    """Whether records built here equal the SDK's own, on the installed SDK.

    The probe record has two attributes: under a configured count limit below that,
    it is checked with room for them (a record over the real limit takes the SDK's
    path anyway), so the check neither warns about attributes nobody logged nor
    turns the fast path off for the whole process.
    """
    if (limits.max_log_record_attributes or 0) < 2:
        limits = copy.copy(limits)
        limits.max_log_record_attributes = 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a probe: whatever it warns about, nobody logged it
        try:
            return _probe(logger, limits)
        except Exception:  # any incompatibility means: use the SDK's path
            return False


def _probe(logger: SDKLogger, limits: LogRecordLimits) -> bool:
    """One record built both ways, compared."""
    span_context = SpanContext(0x1234, 0x56, is_remote=False, trace_flags=TraceFlags(1))
    context = set_span_in_context(NonRecordingSpan(span_context))
    attributes: dict[str, Any] = {"user_id": "u", "data": {"k": 1}}
    record = ValidLogRecord(
        1,
        2,
        context,
        span_context,
        "INFO",
        SeverityNumber.INFO,
        "m",
        bounded(dict(attributes), limits),
    )
    ours = ValidReadWriteLogRecord(record, logger.resource, logger.instrumentation_scope, limits)
    sdk = _otel_private.read_write_record(  # what Logger.emit calls
        LogRecord(
            timestamp=1,
            observed_timestamp=2,
            context=context,
            severity_text="INFO",
            severity_number=SeverityNumber.INFO,
            body="m",
            attributes=dict(attributes),
        ),
        logger.resource,
        logger.instrumentation_scope,
        limits,
    )
    return _same(ours, sdk, attributes)


def _same(
    ours: ValidReadWriteLogRecord, sdk: ReadWriteLogRecord, attributes: dict[str, Any]
) -> bool:
    record = ours.log_record
    our_record, sdk_record = dict(vars(record)), dict(vars(sdk.log_record))
    our_attributes, sdk_attributes = our_record.pop("attributes"), sdk_record.pop("attributes")
    return (
        isinstance(record, ValidLogRecord)
        and tuple(field.name for field in dataclasses.fields(ReadWriteLogRecord))
        == _READ_WRITE_FIELDS
        and set(vars(ours)) == set(vars(sdk)) == set(_READ_WRITE_FIELDS)
        and set(sdk_record) | {"attributes"} == _RECORD_FIELDS
        and our_record == sdk_record
        and isinstance(sdk_attributes, BoundedAttributes)
        and isinstance(our_attributes, BoundedAttributes)
        and dict(our_attributes) == dict(sdk_attributes) == attributes
        and _settings(our_attributes) == _settings(sdk_attributes)
        and our_attributes.dropped == sdk_attributes.dropped == 0
        and ours.dropped_attributes == 0
        and vars(record.__copy__()) == vars(record)
    )
