"""The whole pipeline, really: app -> OTLP -> Collector -> Prometheus, and the file store.

``examples/tdd_app.py`` runs as its own process, instrumented by otel-tdd, with a
known workload (N epics, M tasks each, K focus sessions per task) and sends to
the stack's Collector. Prometheus's query API must then return the seed's
business and performance metrics with exactly the counts the workload implies,
the span metrics connector must have series for the app's operations, and the
Collector's files must hold the app's spans and log records, each log record's
trace id belonging to one of those spans. Then the stack goes down and none of
its processes may be left.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from otel_tdd.stack import process
from otel_tdd.stack.otlp_files import read_logs, read_spans

if TYPE_CHECKING:
    from conftest import StackUnderTest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EPICS, TASKS, SESSIONS = 3, 2, 2
# Scrape every 5s, span metrics flushed every 5s and first shown as 0: ~15s worst case.
PROMETHEUS_WAIT_S = 45.0
# The app's operations, as performance_tracked names its spans.
OPERATIONS = (
    "EpicService.create_epic",
    "TaskService.add_task",
    "TaskService.complete_task",
    "FocusService.record_session",
)


@dataclass(frozen=True)
class Workload:
    service: str
    run_seconds: float
    stack: StackUnderTest
    pids: dict[str, int]


@pytest.fixture(scope="module")
def workload(stack: StackUnderTest) -> Iterator[Workload]:
    """Run the example app once against the module's stack (a unique service name)."""
    service = f"tdd-e2e-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": stack.otlp_http_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "OTEL_TDD_LOG_STREAM": "none",
    }
    started = time.monotonic()
    app = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "tdd_app.py"),
            "--epics",
            str(EPICS),
            "--tasks",
            str(TASKS),
            "--sessions",
            str(SESSIONS),
            "--service-name",
            service,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert app.returncode == 0, app.stdout[-2000:] + app.stderr[-2000:]
    yield Workload(service, time.monotonic() - started, stack, dict(stack.pids))


def wait_value(stack: StackUnderTest, promql: str, expected: float) -> None:
    """Wait until ``promql`` (a sum) equals ``expected``; fail with its last value and logs."""
    last: list[float | None] = [None]

    def matches() -> bool:
        last[0] = stack.query_value(promql)
        return last[0] == expected

    stack.wait_for(matches, PROMETHEUS_WAIT_S, f"{promql} == {expected} (last: {last})")


# --- Prometheus: business and performance metrics ---------------------------------------------


def test_business_counters_in_prometheus_equal_the_workload(workload: Workload) -> None:
    stack, job = workload.stack, workload.service
    wait_value(stack, f'sum(tdd_epics_created_total{{job="{job}"}})', EPICS)
    wait_value(stack, f'sum(tdd_tasks_completed_total{{job="{job}"}})', EPICS * TASKS)
    wait_value(stack, f'sum(tdd_focus_sessions_total{{job="{job}"}})', EPICS * TASKS * SESSIONS)


def test_response_time_histogram_in_prometheus(workload: Workload) -> None:
    stack, job = workload.stack, workload.service
    # /epics, then per task /tasks and /tasks/complete, then each /focus.
    requests = EPICS * (1 + TASKS * (2 + SESSIONS))
    wait_value(stack, f'sum(tdd_response_time_seconds_count{{job="{job}"}})', requests)
    buckets = stack.query(f'tdd_response_time_seconds_bucket{{job="{job}",le="+Inf"}}')
    assert {series["metric"]["endpoint"] for series in buckets} == {
        "/epics",
        "/tasks",
        "/tasks/complete",
        "/focus",
    }
    # The seed's p95 panel query, corrected to aggregate by le: it must parse and run.
    buckets_rate = f'rate(tdd_response_time_seconds_bucket{{job="{job}"}}[1m])'
    quantile = stack.query(f"histogram_quantile(0.95, sum by (le) ({buckets_rate}))")
    assert isinstance(quantile, list)


def test_span_metrics_series_exist_for_the_apps_operations(workload: Workload) -> None:
    stack, service = workload.stack, workload.service

    def calls() -> dict[str, float]:
        result = stack.query(
            f'sum by (span_name) (traces_span_metrics_calls_total{{service_name="{service}"}})'
        )
        found = {series["metric"]["span_name"]: float(series["value"][1]) for series in result}
        return found if all(found.get(op, 0) > 0 for op in OPERATIONS) else {}

    found = stack.wait_for(calls, PROMETHEUS_WAIT_S, f"span metrics for {OPERATIONS}")
    assert found["EpicService.create_epic"] == EPICS
    assert found["TaskService.complete_task"] == EPICS * TASKS
    assert found["FocusService.record_session"] == EPICS * TASKS * SESSIONS
    durations = stack.query(
        "traces_span_metrics_duration_milliseconds_bucket"
        f'{{service_name="{service}",span_name="EpicService.create_epic",le="+Inf"}}'
    )
    assert durations, "no duration histogram for EpicService.create_epic"


# --- the Collector's file store: spans and trace-correlated logs --------------------------------


def test_collector_files_hold_the_apps_spans_and_logs_all_on_known_traces(
    workload: Workload,
) -> None:
    stack, service = workload.stack, workload.service

    def spans() -> list[dict[str, Any]]:
        found = [s for s in read_spans(stack.file_dir) if s["service_name"] == service]
        names = {s["name"] for s in found}
        return found if names >= set(OPERATIONS) else []

    app_spans = stack.wait_for(spans, 15, f"spans of {service} in traces.jsonl")
    counts = {op: sum(1 for s in app_spans if s["name"] == op) for op in OPERATIONS}
    assert counts["EpicService.create_epic"] == EPICS
    assert counts["FocusService.record_session"] == EPICS * TASKS * SESSIONS

    def logs() -> list[dict[str, Any]]:
        found = [r for r in read_logs(stack.file_dir) if r["service_name"] == service]
        return found if any(r["body"] == "Workload finished" for r in found) else []

    records = stack.wait_for(logs, 15, f"log records of {service} in logs.jsonl")
    bodies = [r["body"] for r in records]
    assert bodies.count("Creating new epic") == EPICS
    assert bodies.count("Focus session recorded") == EPICS * TASKS * SESSIONS

    trace_ids = {s["trace_id"] for s in app_spans}
    span_ids = {s["span_id"] for s in app_spans}
    in_requests = [r for r in records if r["body"] != "Workload finished"]
    assert in_requests and all(r["trace_id"] for r in in_requests), [
        r["body"] for r in in_requests if not r["trace_id"]
    ]
    for record in in_requests:
        assert record["trace_id"] in trace_ids, f"log {record['body']!r} on an unknown trace"
        assert record["span_id"] in span_ids, f"log {record['body']!r} on an unknown span"
    # The one record logged outside any request carries no trace rather than a made-up one.
    assert [r["trace_id"] for r in records if r["body"] == "Workload finished"] == [None]


# --- and down leaves nothing ----------------------------------------------------------------------


def test_stack_down_leaves_no_process(workload: Workload) -> None:
    """Runs last in this module: takes the module's stack down and checks every pid."""
    stack = workload.stack
    assert set(workload.pids) == {"collector", "prometheus", "alertmanager"}
    stack.down()
    assert process.wait_until(
        lambda: not any(process.is_running(pid) for pid in workload.pids.values()), timeout=5
    ), {name: pid for name, pid in workload.pids.items() if process.is_running(pid)}
    assert not stack.state_file.exists()
    assert all(row.state == "stopped" for row in stack.status())
