"""``otel-tdd run uvicorn ...``: an ASGI console script, with FastAPI's instrumentor.

The example app (examples/fastapi_app.py) has no telemetry code but its logging.
Nothing is exported while it runs (FLUSH_ONLY_AT_EXIT), so everything the real
Collector has afterwards came through the flush at SIGTERM: uvicorn takes the
signal first, shuts down, and re-raises it to our handler, which must end with 0.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from run_helpers import EXAMPLES, FLUSH_ONLY_AT_EXIT, OTEL_TDD, clean_env, http_get, running

from otel_tdd.stack import process

pytestmark = pytest.mark.integration

SERVICE = "tasks-uvicorn"


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_uvicorn_requests_become_server_spans_and_correlated_json_logs(
    collector: Any, tmp_path: Path
) -> None:
    (port,) = process.free_ports(1)
    base = f"http://127.0.0.1:{port}"
    argv = [
        OTEL_TDD, "run", "--service-name", SERVICE, "--endpoint", collector.otlp_http_endpoint,
        "uvicorn", "--app-dir", str(EXAMPLES), "--host", "127.0.0.1", "--port", str(port),
        "fastapi_app:app",
    ]  # fmt: skip
    with running(argv, clean_env(FLUSH_ONLY_AT_EXIT), tmp_path, "uvicorn") as server:
        # Up = the port accepts connections. Not an HTTP poll: a poll that times out on a
        # slow start and retries would make requests this test does not count.
        up = process.wait_until(
            lambda: _accepts(port), timeout=60, alive=lambda: server.proc.poll() is None
        )
        assert up, f"uvicorn never listened on {port}\n{server.output()}"
        answers = [http_get(f"{base}/tasks/{task_id}") for task_id in (1, 1, 2, 3, 9)]
        assert [status for status, _ in answers] == [200, 200, 200, 200, 404], answers
        handler_trace_ids = {json.loads(body)["trace_id"] for _, body in answers[:4]}
        assert not [s for s in collector.spans() if s["service_name"] == SERVICE]  # not yet
        assert server.terminate() == 0, server.output()
    requests = 5

    # stdout: the app's records (StructuredLogger and a plain stdlib logger) are JSON,
    # each correlated to its request's trace.
    records = [r for r in server.json_lines() if r["logger"].startswith("tasks_api")]
    assert len(records) == 2 * requests, server.output()
    assert all(r["correlation_id"] == r["trace_id"] for r in records)
    assert {r["trace_id"] for r in records} >= handler_trace_ids
    assert len({r["trace_id"] for r in records}) == requests  # one trace per request
    unknown = [r for r in records if r["message"] == "Unknown task"]
    assert [r["level"] for r in unknown] == ["WARNING"]
    # uvicorn's own lines are JSON on stdout too (OTEL_TDD_FRAMEWORK_LOGS): its start-up
    # line and one access line per request; none is left as plain text on either stream.
    lines = server.json_lines()
    assert any(
        r["logger"] == "uvicorn.error" and r["message"] == "Application startup complete."
        for r in lines
    ), server.output()
    access = [r for r in lines if r["logger"] == "uvicorn.access"]
    assert len(access) == requests and all('"GET /tasks/' in r["message"] for r in access)
    plain = [
        line
        for path in (server.stdout_path, server.stderr_path)
        for line in path.read_text(errors="replace").splitlines()
        if line.startswith(("INFO:", "WARNING:", "ERROR:"))
    ]
    assert not plain, plain

    # The Collector: one SERVER span per request, from the FastAPI instrumentor, under
    # --service-name, in the same traces as the records, and the records themselves.
    def server_spans() -> list[dict[str, Any]]:
        spans = [
            s for s in collector.spans() if s["service_name"] == SERVICE and s["kind"] == "SERVER"
        ]
        return spans if len(spans) >= requests else []

    spans = collector.wait_for(server_spans, 30, f"{requests} server spans")
    assert len(spans) == requests
    assert {s["name"] for s in spans} == {"GET /tasks/{task_id}"}
    assert {s["trace_id"] for s in spans} == {r["trace_id"] for r in records}
    assert all(s["resource"]["service.name"] == SERVICE for s in spans)
    by_trace = {s["trace_id"]: s for s in spans}
    # uvicorn's access lines are written while the response is sent: in the request's trace.
    assert {r["trace_id"] for r in access} == set(by_trace)
    assert not [r for r in lines if "color_message" in r["data"]]  # ANSI noise dropped
    for record in records:  # the record was written inside the request's server span
        assert record["span_id"] == by_trace[record["trace_id"]]["span_id"], record
    statuses = sorted(s["attributes"].get("http.response.status_code") or
                      s["attributes"].get("http.status_code") for s in spans)  # fmt: skip
    assert statuses == [200, 200, 200, 200, 404]

    def otlp_records() -> list[dict[str, Any]]:
        logs = [r for r in collector.logs() if r["service_name"] == SERVICE]
        ours = [r for r in logs if r["body"] in ("Serving task", "Unknown task")]
        return ours if len(ours) >= requests else []

    logs = collector.wait_for(otlp_records, 30, "the app's records over OTLP")
    assert {r["trace_id"] for r in logs} == set(by_trace)
    # The flush came last: the graceful shutdown's own record arrived too.
    assert "Graceful shutdown started" in {
        r["body"] for r in collector.logs() if r["service_name"] == SERVICE
    }
