"""security_event(): the span event it adds to the active span, redacted like the record."""

from __future__ import annotations

import json

from opentelemetry import trace

from otel_tdd.structured_logging import StructuredLogger
from otel_tdd.testing import Capture


def test_security_event_adds_a_redacted_event_to_the_active_span(otel_capture: Capture) -> None:
    logger = StructuredLogger("tdd_application")
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("POST /login"):
        logger.security_event(
            "authentication_failure",
            {
                "attempted_username": "admin",
                "password": "hunter2",
                "api_key": "sk-live-42",
                "note": "card 4111 1111 1111 1111",
                "attempt_count": 3,
                "locked": False,
            },
        )
    (span,) = otel_capture.spans()
    (event,) = span.events
    assert event.name == "security.authentication_failure"
    assert dict(event.attributes or {}) == {
        "attempted_username": "admin",
        "password": "[REDACTED]",
        "api_key": "[REDACTED]",
        "note": "card [REDACTED]",
        "attempt_count": 3,
        "locked": False,
    }
    # No secret anywhere on the span, and the record belongs to the same span.
    dumped = json.dumps([dict(e.attributes or {}) for e in span.events]) + repr(span.attributes)
    for secret in ("hunter2", "sk-live-42", "4111"):
        assert secret not in dumped
    (record,) = [r for r in otel_capture.records() if "security" in r]
    assert record["span_id"] == format(span.context.span_id, "016x")
    assert record["data"]["password"] == "[REDACTED]"


def test_values_a_span_event_cannot_hold_are_left_out_not_stringified(
    otel_capture: Capture,
) -> None:
    """Nested data stays in the log record; the event keeps only scalar attributes."""
    logger = StructuredLogger("tdd_application")
    with trace.get_tracer("test").start_as_current_span("op"):
        logger.security_event("csrf_token_validation", {"token_valid": False, "form": {"id": 1}})
    (event,) = otel_capture.spans()[0].events
    assert dict(event.attributes or {}) == {"token_valid": False}
    assert otel_capture.metric_value("tdd_csrf_violations_total") == 1


def test_without_an_active_span_there_is_no_event_but_the_record_and_counter(
    otel_capture: Capture,
) -> None:
    StructuredLogger("tdd_application").security_event("login_success", {"user": "a"})
    assert otel_capture.spans() == []
    assert [r["security"]["event_type"] for r in otel_capture.records()] == ["login_success"]
    assert (
        otel_capture.metric_value("tdd_security_events_total", {"event_type": "login_success"}) == 1
    )
