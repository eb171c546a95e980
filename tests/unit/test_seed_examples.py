"""The seed's usage examples, run with only the import path changed (monitoring. → otel_tdd.).

Each test runs the seed's code as written and asserts what it promises: the
JSON schema of every line, correlation through the trace, redaction, counts.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from otel_tdd.structured_logging import StructuredLogger, correlation_context
from otel_tdd.testing import Capture


def by_message(capture: Capture, message: str) -> dict[str, Any]:
    matches = [r for r in capture.records() if r["message"] == message]
    assert matches, f"no record with message {message!r} in {capture.lines()}"
    return matches[0]


def test_basic_structured_logging_carries_correlation_and_data(otel_capture: Capture) -> None:
    # --- the seed's "Basic Structured Logging" ---
    logger = StructuredLogger("tdd_application")
    with correlation_context("user_123", "web_request"):
        logger.info(
            "User login successful",
            {"user_id": "user_123", "login_method": "oauth", "session_duration": 1800},
        )
        logger.error(
            "Database connection failed",
            {"database": "framework.db", "retry_count": 3, "error_code": "CONNECTION_TIMEOUT"},
        )
    # ---
    login = by_message(otel_capture, "User login successful")
    failure = by_message(otel_capture, "Database connection failed")
    (span,) = [s for s in otel_capture.spans() if s.name == "correlation_context"]
    trace_hex = format(span.context.trace_id, "032x")
    for record in (login, failure):
        assert record["correlation_id"] == trace_hex == record["trace_id"]
        assert record["span_id"] == format(span.context.span_id, "016x")
        assert record["user_id"] == "user_123"
        assert record["request_id"] == "web_request"
        assert record["logger"] == "tdd_application"
        assert record["context"]["environment"] == "development"
    assert login["level"] == "INFO"
    assert login["data"] == {
        "user_id": "user_123",
        "login_method": "oauth",
        "session_duration": 1800,
    }
    assert failure["level"] == "ERROR"
    assert failure["data"]["error_code"] == "CONNECTION_TIMEOUT"


def test_performance_tracking_decorator_and_context(otel_capture: Capture) -> None:
    logger = StructuredLogger("tdd_application")

    class EpicProcessor:
        def process(self, epic_id: int) -> dict[str, int]:
            return {"epic_id": epic_id}

    epic_processor = EpicProcessor()

    # --- the seed's "Performance Tracking" ---
    @logger.performance_tracked
    def process_epic_data(epic_id: int) -> dict[str, int]:
        # Function automatically logged with execution time
        return epic_processor.process(epic_id)

    with logger.performance_context("database_query") as perf:
        results = [1, 2, 3]
        perf["records_processed"] = len(results)
    # ---
    assert process_epic_data(7) == {"epic_id": 7}

    names = otel_capture.span_names()
    assert "database_query" in names
    assert any(name.endswith("process_epic_data") for name in names)
    performance_records = [r for r in otel_capture.records() if "performance" in r]
    operations = {r["performance"]["operation"] for r in performance_records}
    assert "database_query" in operations
    for record in performance_records:
        assert record["performance"]["duration_ms"] >= 0
        assert record["performance"]["memory_usage_mb"] > 0
        assert record["level"] == "DEBUG"  # cheap by default
        assert record["correlation_id"] is not None
    query = next(
        r for r in performance_records if r["performance"]["operation"] == "database_query"
    )
    assert query["performance"]["records_processed"] == 3
    assert (
        otel_capture.metric_value("tdd_operation_duration_seconds", {"operation": "database_query"})
        == 1
    )


def test_security_event_logging_marks_counts_and_redacts(otel_capture: Capture) -> None:
    logger = StructuredLogger("tdd_application")
    # --- the seed's "Security Event Logging" ---
    logger.security_event(
        "authentication_failure",
        {
            "user_ip": "192.168.1.100",
            "attempted_username": "admin",
            "failure_reason": "invalid_credentials",
            "attempt_count": 3,
        },
    )
    logger.security_event(
        "csrf_token_validation",
        {"form_id": "client_create", "token_valid": True, "user_id": "user_123"},
    )
    # ---
    logger.security_event("password_reset", {"password": "hunter2", "new_password": "s3cret!"})
    records = [r for r in otel_capture.records() if "security" in r]
    assert [r["security"]["event_type"] for r in records] == [
        "authentication_failure",
        "csrf_token_validation",
        "password_reset",
    ]
    assert records[0]["level"] == "WARNING"
    assert records[1]["data"]["token_valid"] is True  # a boolean is not a secret
    assert records[2]["data"] == {"password": "[REDACTED]", "new_password": "[REDACTED]"}
    assert "hunter2" not in "".join(otel_capture.lines())
    assert otel_capture.metric_value("tdd_security_events_total") == 3
    assert otel_capture.metric_value("tdd_auth_attempts_total", {"result": "failure"}) == 1


def test_multi_user_correlation_across_services(otel_capture: Capture) -> None:
    logger = StructuredLogger("tdd_application")

    class EpicService:
        def __init__(self) -> None:
            self.logger = StructuredLogger("epic_service")

        def create_epic(self, epic_data: dict[str, Any]) -> None:
            self.logger.info("Creating new epic", {"epic_name": epic_data["name"]})

    class ProjectService:
        def assign_project(self, project_id: int) -> None:
            logging.getLogger("project_service").info("Project %s assigned", project_id)

    epic_service, project_service = EpicService(), ProjectService()
    epic_data, project_id = {"name": "Onboarding"}, 42

    # --- the seed's "Multi-User Correlation" ---
    def process_user_request(user_id: str, request_id: str) -> None:
        with correlation_context(user_id, request_id):
            # All logs within this context include correlation IDs
            logger.info("Processing user request")

            # Call other services
            epic_service.create_epic(epic_data)  # Logs include correlation
            project_service.assign_project(project_id)  # Logs include correlation

            logger.info("Request processing completed")

    # ---
    process_user_request("alice", "req_1")
    process_user_request("bob", "req_2")
    records = otel_capture.records()
    assert len(records) == 8
    by_user: dict[str, set[str]] = {}
    for record in records:
        by_user.setdefault(record["user_id"], set()).add(record["correlation_id"])
    assert set(by_user) == {"alice", "bob"}
    assert all(len(ids) == 1 for ids in by_user.values()), by_user
    assert by_user["alice"] != by_user["bob"]
    assert {r["logger"] for r in records} == {"tdd_application", "epic_service", "project_service"}
    assert {r["request_id"] for r in records if r["user_id"] == "bob"} == {"req_2"}


def test_context_propagation_into_nested_services(otel_capture: Capture) -> None:
    class Db:
        def create_epic(self, epic_data: dict[str, Any]) -> int:
            return 99

    # --- the seed's "Context Propagation" ---
    class EpicService:
        def __init__(self) -> None:
            self.logger = StructuredLogger("epic_service")
            self.db = Db()

        def create_epic(self, epic_data: dict[str, Any]) -> int:
            # Inherits correlation context from parent request
            self.logger.info(
                "Creating new epic",
                {"epic_name": epic_data["name"], "task_count": len(epic_data["tasks"])},
            )

            # Context propagates to database operations
            with self.logger.performance_context("epic_creation"):
                epic_id = self.db.create_epic(epic_data)

            return epic_id

    # ---
    with correlation_context("user_9", "req_ctx", session_id="sess_789xyz"):
        assert EpicService().create_epic({"name": "E", "tasks": [1, 2]}) == 99
    records = otel_capture.records()
    assert {r["session_id"] for r in records} == {"sess_789xyz"}
    assert len({r["correlation_id"] for r in records}) == 1
    spans = {s.name: s for s in otel_capture.spans()}
    assert spans["epic_creation"].parent is not None
    assert spans["epic_creation"].parent.span_id == spans["correlation_context"].context.span_id


def test_sampling_keeps_whole_traces_and_all_warnings(otel_capture: Capture) -> None:
    # --- the seed's "Sampling and Rate Limiting" (sampling half) ---
    logger = StructuredLogger("high_traffic", sample_rate=0.1)  # Log 10% of events
    # ---
    for index in range(400):
        with correlation_context("u", f"req_{index}"):
            logger.info("step one")
            logger.info("step two")
            if index % 50 == 0:
                logger.warning("always kept")
    records = otel_capture.records()
    infos = [r for r in records if r["level"] == "INFO"]
    per_trace: dict[str, int] = {}
    for record in infos:
        per_trace[record["correlation_id"]] = per_trace.get(record["correlation_id"], 0) + 1
    assert all(count == 2 for count in per_trace.values()), "a trace was split by sampling"
    kept_traces = len(per_trace)
    assert 15 <= kept_traces <= 70, f"kept {kept_traces} of 400 traces at rate 0.1"
    assert len([r for r in records if r["level"] == "WARNING"]) == 8


def test_rate_limited_suppresses_counts_and_reports(
    otel_capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = StructuredLogger("high_traffic")

    # --- the seed's "Sampling and Rate Limiting" (rate-limit half) ---
    @logger.rate_limited(max_logs_per_minute=10)
    def noisy_operation() -> None:
        logger.debug("Frequent operation completed")

    # ---
    for _ in range(25):
        noisy_operation()
    logger.info("outside the limit")
    records = otel_capture.records()
    assert [r["message"] for r in records].count("Frequent operation completed") == 10
    assert otel_capture.metric_value("tdd_log_records_suppressed_total") == 15

    # Roll the window: the next record says how many were hidden.
    import otel_tdd.logs.steps as pipeline

    real_monotonic = pipeline.time.monotonic
    monkeypatch.setattr(pipeline.time, "monotonic", lambda: real_monotonic() + 61)
    noisy_operation()
    last = otel_capture.records()[-1]
    assert last["rate_limit"]["suppressed"] == 15
    assert last["message"] == "Frequent operation completed"
