"""Two Flask services, both under ``otel-tdd run``: one trace and one correlation id across the hop.

board_service (``python board_service.py``) sets ``user_id`` and ``request_id``
with ``correlation_context`` and calls tasks_service (``flask --app ... run``)
with ``requests``. Neither has tracing code: the Flask and requests
instrumentors, loaded by the wrapper, carry W3C ``traceparent`` and ``baggage``.
The real Collector receives both services' spans and logs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from run_helpers import EXAMPLES, EXPORT_SOON, OTEL_TDD, clean_env, http_get, running

from otel_tdd.stack import process

pytestmark = pytest.mark.e2e

SERVICES = EXAMPLES / "http_services"


def test_one_trace_and_one_correlation_id_cross_the_http_hop(
    collector: Any, tmp_path: Path
) -> None:
    board_port, tasks_port = process.free_ports(2)
    tasks_argv = [
        OTEL_TDD, "run", "--service-name", "tasks-service",
        "--endpoint", collector.otlp_http_endpoint,
        "flask", "--app", str(SERVICES / "tasks_service.py"),
        "run", "--host", "127.0.0.1", "--port", str(tasks_port), "--no-reload",
    ]  # fmt: skip
    board_argv = [
        OTEL_TDD, "run", "--service-name", "board-service",
        "--endpoint", collector.otlp_http_endpoint,
        "python", str(SERVICES / "board_service.py"), "--port", str(board_port),
    ]  # fmt: skip
    board_env = clean_env({**EXPORT_SOON, "TASKS_SERVICE_URL": f"http://127.0.0.1:{tasks_port}"})
    with (
        running(tasks_argv, clean_env(EXPORT_SOON), tmp_path, "tasks") as tasks,
        running(board_argv, board_env, tmp_path, "board") as board,
    ):
        tasks.wait_http(f"http://127.0.0.1:{tasks_port}/tasks/2")
        board.wait_http(f"http://127.0.0.1:{board_port}/board/2")
        status, body = http_get(
            f"http://127.0.0.1:{board_port}/board/1?user=alice", headers={"X-Request-Id": "req-42"}
        )
        assert status == 200, board.output()
        answer = json.loads(body)
        # The downstream service saw the caller's trace and baggage while handling the call.
        assert answer["seen"]["user_id"] == "alice"
        assert answer["seen"]["request_id"] == "req-42"
        assert answer["downstream_seen"] == answer["seen"]
        trace_id = answer["seen"]["correlation_id"]
        assert trace_id and len(trace_id) == 32
        assert board.terminate() == 0, board.output()
        assert tasks.terminate() == 0, tasks.output()
        tasks_stdout = tasks.json_lines()

    def trace_spans() -> list[dict[str, Any]]:
        spans = [s for s in collector.spans() if s["trace_id"] == trace_id]
        services = {s["service_name"] for s in spans}
        return spans if {"board-service", "tasks-service"} <= services else []

    spans = collector.wait_for(trace_spans, 20, "both services' spans in the trace")
    by_id = {s["span_id"]: s for s in spans}
    (incoming,) = [
        s for s in spans if s["service_name"] == "board-service" and s["kind"] == "SERVER"
    ]
    (call,) = [s for s in spans if s["kind"] == "CLIENT"]
    (handled,) = [
        s for s in spans if s["service_name"] == "tasks-service" and s["kind"] == "SERVER"
    ]
    assert incoming["parent_span_id"] in (None, "")  # the trace starts at the board
    assert call["service_name"] == "board-service"
    assert handled["parent_span_id"] == call["span_id"]  # traceparent crossed the hop
    # Walk up from the downstream span to the root: one tree, one trace.
    node = handled
    while node.get("parent_span_id"):
        node = by_id[node["parent_span_id"]]
    assert node is incoming

    def trace_logs() -> list[dict[str, Any]]:
        logs = [r for r in collector.logs() if r["trace_id"] == trace_id]
        return (
            logs if {r["service_name"] for r in logs} >= {"board-service", "tasks-service"} else []
        )

    logs = collector.wait_for(trace_logs, 20, "both services' logs in the trace")
    assert {r["body"] for r in logs} >= {"Building board", "Listing tasks", "Board built"}
    for record in logs:
        assert record["attributes"].get("user_id") == "alice", record
        assert record["attributes"].get("request_id") == "req-42", record

    # The downstream JSON lines: correlation_id is the upstream trace id.
    (listed,) = [
        r
        for r in tasks_stdout
        if r.get("message") == "Listing tasks" and r.get("request_id") == "req-42"
    ]
    assert listed["correlation_id"] == trace_id
    assert listed["user_id"] == "alice"
