"""Security events: a record marked as security, a span event and a counter.

Kept apart from the logger so the same event can be raised from a request
handler, a health check or an auth backend without a StructuredLogger at hand.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace

from otel_tdd import _runtime
from otel_tdd.emit import Emitter
from otel_tdd.metrics import catalog

__all__ = ["record_security_event"]

# Events that also feed the seed's dedicated security counters.
_AUTH_FAILURES = ("authentication_failure", "auth_failure", "login_failure")
_AUTH_SUCCESSES = ("authentication_success", "auth_success", "login_success")
_INT64 = range(-(2**63), 2**63)  # what OTLP carries: a bigger int fails the export batch


def record_security_event(
    logger: Emitter, event_type: str, data: Mapping[str, Any] | None = None
) -> None:
    if not event_type or not isinstance(event_type, str):
        raise ValueError(f"event_type={event_type!r} is invalid: expected a non-empty string")
    runtime = _runtime.current()
    # The type is free text too ("login for password=..."): it reaches the span event's
    # name, the metric label and the message.
    event_type = runtime.redactor.text(event_type)
    safe = runtime.redactor.mapping(data if data is not None else {})
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(
            "security." + event_type,
            {
                k: v
                for k, v in safe.items()
                if isinstance(v, (str, bool, float)) or (isinstance(v, int) and v in _INT64)
            },
        )
    catalog.security_events.add(1, {"event_type": event_type})
    if event_type in _AUTH_FAILURES:
        catalog.auth_attempts.add(1, {"result": "failure"})
    elif event_type in _AUTH_SUCCESSES:
        catalog.auth_attempts.add(1, {"result": "success"})
    elif event_type.startswith("csrf") and safe.get("token_valid") is False:
        catalog.csrf_violations.add(1)
    elif event_type.startswith("rate_limit"):
        catalog.rate_limit_hits.add(1)
    # Failures are WARNING; the rest INFO. Sampling never drops a security record.
    failed = (
        event_type in _AUTH_FAILURES or safe.get("token_valid") is False or "fail" in event_type
    )
    logger.log(
        logging.WARNING if failed else logging.INFO,
        f"security event: {event_type}",
        safe,
        security={"event_type": event_type},
    )
