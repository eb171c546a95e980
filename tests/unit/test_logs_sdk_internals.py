"""The OpenTelemetry API private keys the logs path reads (otel_tdd/logs/sdk_internals.py)
still mean what we read them for, on the installed API."""

from __future__ import annotations

from opentelemetry import baggage, context, trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from otel_tdd.logs import sdk_internals


def test_the_span_and_baggage_keys_are_where_the_api_stores_them() -> None:
    span = NonRecordingSpan(SpanContext(0xAB, 0xCD, is_remote=False, trace_flags=TraceFlags(1)))
    ctx = baggage.set_baggage("user_id", "u", trace.set_span_in_context(span))
    assert ctx.get(sdk_internals.span_key()) is span
    assert ctx.get(sdk_internals.baggage_key()) == {"user_id": "u"}


def test_the_bound_getter_returns_the_attached_context() -> None:
    get_current = sdk_internals.current_context_getter()
    token = context.attach(context.set_value("k", "v"))
    try:
        assert get_current() is context.get_current()
        assert get_current().get("k") == "v"
    finally:
        context.detach(token)


def test_the_suppress_key_is_the_one_the_sdk_exporters_set() -> None:
    key = sdk_internals.suppress_instrumentation_key()
    token = context.attach(context.set_value(key, True))
    try:
        assert not is_instrumentation_enabled()
    finally:
        context.detach(token)
