"""Each health check runs in its own span; its duration is recorded there, so exemplars link it."""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry.trace import StatusCode

from otel_tdd.health_check import HealthMonitor
from otel_tdd.metrics import SECONDS_BUCKETS
from otel_tdd.structured_logging import StructuredLogger


def _duration_point(otel_capture: Any, check: str) -> Any:
    points = otel_capture.metrics()["tdd_health_check_duration_seconds"]
    matching = [point for attributes, point in points if attributes == {"check": check}]
    assert len(matching) == 1, points
    return matching[0]


def test_a_checks_duration_exemplar_carries_the_trace_id_of_its_span(otel_capture: Any) -> None:
    health = HealthMonitor(cache_ttl_s=0)
    health.register_check("db", lambda: {"status": "healthy"})
    health.run_all_checks()

    spans = {span.name: span for span in otel_capture.spans()}
    check_span = spans["health check db"]
    run_span = spans["health checks"]
    assert check_span.parent is not None
    assert check_span.parent.span_id == run_span.context.span_id
    assert check_span.attributes["health.check"] == "db"
    assert check_span.attributes["health.status"] == "healthy"
    point = _duration_point(otel_capture, "db")
    assert tuple(point.explicit_bounds) == SECONDS_BUCKETS  # seconds, not the SDK's ms buckets
    assert [e.trace_id for e in point.exemplars] == [check_span.context.trace_id]
    assert point.exemplars[0].span_id == check_span.context.span_id


def test_a_checks_own_log_records_belong_to_its_span(otel_capture: Any) -> None:
    logger = StructuredLogger("app.checks")
    health = HealthMonitor(cache_ttl_s=0)

    @health.register_check
    def queue() -> dict[str, Any]:
        logger.warning("queue is long", {"depth": 7})
        return {"status": "warning"}

    health.run_all_checks()
    check_span = next(s for s in otel_capture.spans() if s.name == "health check queue")
    record = next(r for r in otel_capture.records() if r["message"] == "queue is long")
    assert record["correlation_id"] == format(check_span.context.trace_id, "032x")


def test_a_timed_out_check_ends_its_span_as_an_error_with_the_duration_in_it(
    otel_capture: Any,
) -> None:
    release = threading.Event()
    health = HealthMonitor(cache_ttl_s=0)
    health.register_check("hangs", lambda: release.wait(30), timeout_s=0.2)
    try:
        result = health.run_all_checks()["checks"]["hangs"]
    finally:
        release.set()

    assert result["status"] == "critical"
    check_span = next(s for s in otel_capture.spans() if s.name == "health check hangs")
    assert check_span.status.status_code is StatusCode.ERROR
    assert "timed out after 0.2s" in (check_span.status.description or "")
    point = _duration_point(otel_capture, "hangs")
    assert point.count == 1
    assert point.sum >= 0.2
    assert [e.trace_id for e in point.exemplars] == [check_span.context.trace_id]


def test_a_change_of_status_is_logged_in_the_trace_of_the_run_that_saw_it(
    otel_capture: Any,
) -> None:
    health = HealthMonitor(cache_ttl_s=0)
    health.register_check("db", lambda: {"status": "critical", "message": "refused"})
    health.run_all_checks()

    run_span = next(s for s in otel_capture.spans() if s.name == "health checks")
    assert run_span.attributes["health.overall_status"] == "critical"
    check_span = next(s for s in otel_capture.spans() if s.name == "health check db")
    assert check_span.status.status_code is StatusCode.ERROR
    record = next(r for r in otel_capture.records() if r["logger"] == "otel_tdd.health")
    assert record["message"] == "Health check db is critical"
    assert record["data"]["detail"] == "refused"
    assert record["correlation_id"] == format(run_span.context.trace_id, "032x")


def test_a_monitor_without_checks_makes_no_spans(otel_capture: Any) -> None:
    health = HealthMonitor(cache_ttl_s=0)
    assert health.get_detailed_status().status_code == 200
    assert health.get_readiness_status().status_code == 200
    assert otel_capture.spans() == []


def test_a_failing_checks_span_carries_the_redacted_error_only(otel_capture: Any) -> None:
    health = HealthMonitor(cache_ttl_s=0)

    @health.register_check
    def db() -> dict[str, Any]:
        raise ConnectionError("cannot reach postgresql://app:hunter2@db:5432/app")

    health.run_all_checks()
    span = next(s for s in otel_capture.spans() if s.name == "health check db")
    assert span.status.status_code is StatusCode.ERROR
    assert "ConnectionError" in (span.status.description or "")
    assert "hunter2" not in repr(span.to_json())
