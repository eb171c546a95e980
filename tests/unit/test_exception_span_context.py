"""A record of an exception logged after its span ended still names that span's trace."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from otel_tdd.logs import exception_spans as exceptions


def test_the_recording_span_is_current_while_its_exception_is_logged_later() -> None:
    exceptions.install()
    tracer = TracerProvider().get_tracer(__name__)
    error = RuntimeError("boom")
    try:
        with tracer.start_as_current_span("request"):
            raise error
    except RuntimeError:
        pass
    recorded = exceptions.span_context_of(error)
    assert recorded is not None and recorded.is_valid
    assert not trace.get_current_span().get_span_context().is_valid  # the span has ended
    with exceptions.in_recording_span(error):
        assert trace.get_current_span().get_span_context() == recorded
    # Another span current: that one stays (the record belongs to where it is logged).
    with tracer.start_as_current_span("other") as other, exceptions.in_recording_span(error):
        assert trace.get_current_span() is other
    # An exception no span recorded changes nothing.
    with exceptions.in_recording_span(ValueError()):
        assert not trace.get_current_span().get_span_context().is_valid
