"""A real app process exports spans, logs and metrics over OTLP to the real Collector.

The child is configured only through the standard variables, as a user would.
Every OTLP log record must carry the trace id of a span that arrived too, and
the JSON it printed on stdout must agree. The same child then runs with the other
standard OTLP variables: gRPC, per-signal endpoints (and protocols), and headers,
which a local OTLP/HTTP sink records as they came over the wire.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_tdd.stack import process

pytestmark = pytest.mark.integration

CHILD = textwrap.dedent(
    """
    import logging
    import otel_tdd
    from otel_tdd.metrics import catalog
    from otel_tdd.structured_logging import StructuredLogger, correlation_context

    logger = StructuredLogger("tdd_application")

    @logger.performance_tracked(name="EpicService.create_epic", level=logging.INFO)
    def create_epic(n):
        logger.info("Creating new epic", {"n": n, "password": "hunter2"})
        logging.getLogger("sqlalchemy.engine").info("INSERT INTO epics %s", n)
        catalog.epics_created.add(1, {"project_type": "web"})

    for n in range(3):
        with correlation_context(f"user_{n}", f"req_{n}", session_id="sess_1"):
            create_epic(n)
    assert otel_tdd.shutdown()
    """
)


def child_env(**variables: str) -> dict[str, str]:
    """This environment without the caller's OTEL_* settings, plus ``variables``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return {**env, "OTEL_METRIC_EXPORT_INTERVAL": "500", **variables}


def run_child(env: dict[str, str]) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_all_three_signals_arrive_with_matching_trace_ids(collector: Any) -> None:
    env = {
        **os.environ,
        "OTEL_SERVICE_NAME": "otlp-export-test",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_http_endpoint,
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
    }
    stdout_records = run_child(env)

    def ours(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [i for i in items if i["resource"].get("service.name") == "otlp-export-test"]

    collector.wait_for(lambda: len(ours(collector.spans())) >= 6, 30, "6 spans")
    collector.wait_for(lambda: len(ours(collector.logs())) >= 9, 30, "9 log records")
    collector.wait_for(
        lambda: any(m["name"] == "tdd_epics_created_total" for m in collector.metrics()),
        30,
        "the epics counter",
    )
    spans = ours(collector.spans())
    logs = ours(collector.logs())
    span_ids = {(s["trace_id"], s["span_id"]) for s in spans}
    trace_ids = {s["trace_id"] for s in spans}
    assert len(trace_ids) == 3  # one trace per request
    assert {s["name"] for s in spans} == {"correlation_context", "EpicService.create_epic"}
    for record in logs:
        assert (record["trace_id"], record["span_id"]) in span_ids, record
    bodies = sorted(record["body"] for record in logs)
    assert bodies.count("Creating new epic") == 3
    assert sum(body.startswith("INSERT INTO epics") for body in bodies) == 3
    epic_logs = [r for r in logs if r["body"] == "Creating new epic"]
    assert {r["attributes"]["user_id"] for r in epic_logs} == {"user_0", "user_1", "user_2"}
    assert all(r["attributes"]["data"]["password"] == "[REDACTED]" for r in epic_logs)
    assert "hunter2" not in json.dumps(logs)

    # stdout and OTLP tell the same story.
    by_trace = {r["correlation_id"] for r in stdout_records if r["message"] == "Creating new epic"}
    assert by_trace == trace_ids

    epics = [m for m in collector.metrics() if m["name"] == "tdd_epics_created_total"]
    assert max(m["value"] for m in epics) == 3


def assert_the_childs_signals_arrived(collector: Any, service: str) -> None:
    """CHILD's 3 traces of 2 spans, its 9 log records and its counter, all from ``service``."""

    def ours(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [i for i in items if i["resource"].get("service.name") == service]

    collector.wait_for(lambda: len(ours(collector.spans())) >= 6, 30, "6 spans")
    collector.wait_for(lambda: len(ours(collector.logs())) >= 9, 30, "9 log records")
    spans, logs = ours(collector.spans()), ours(collector.logs())
    epics = collector.wait_for(
        lambda: [m for m in ours(collector.metrics()) if m["name"] == "tdd_epics_created_total"],
        30,
        "the epics counter",
    )
    assert len(spans) == 6 and len(logs) == 9  # each exactly once
    assert len({s["trace_id"] for s in spans}) == 3
    span_ids = {(s["trace_id"], s["span_id"]) for s in spans}
    assert all((r["trace_id"], r["span_id"]) in span_ids for r in logs), logs
    assert max(m["value"] for m in epics) == 3


def test_grpc_protocol_from_the_standard_variable(collector: Any) -> None:
    run_child(
        child_env(
            OTEL_SERVICE_NAME="otlp-grpc-test",
            OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.otlp_grpc_endpoint,
        )
    )
    assert_the_childs_signals_arrived(collector, "otlp-grpc-test")


def test_per_signal_endpoints_and_protocols_win_over_the_generic_ones(collector: Any) -> None:
    """Per the spec: a signal's endpoint is used as is (no /v1/... appended), and it
    and the signal's protocol override the generic variables, here a dead port."""
    (dead_port,) = process.free_ports(1)
    run_child(
        child_env(
            OTEL_SERVICE_NAME="otlp-per-signal-test",
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{dead_port}",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{collector.otlp_http_endpoint}/v1/traces",
            OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=f"{collector.otlp_http_endpoint}/v1/logs",
            OTEL_EXPORTER_OTLP_METRICS_PROTOCOL="grpc",
            OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=collector.otlp_grpc_endpoint,
        )
    )
    assert_the_childs_signals_arrived(collector, "otlp-per-signal-test")


class OtlpHttpSink:
    """An OTLP/HTTP receiver on 127.0.0.1 that keeps each request's path, headers and body.

    The Collector does not show request headers in what it writes, so this is where
    a test sees what the exporters put on the wire. It answers 200 with an empty
    (valid) protobuf response, as a receiver that accepted everything does.
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                sink.requests.append((self.path, headers, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass  # keep the test output clean

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def otlp_sink() -> Iterator[OtlpHttpSink]:
    sink = OtlpHttpSink()
    try:
        yield sink
    finally:
        sink.stop()


def test_otlp_headers_reach_the_wire(otlp_sink: OtlpHttpSink) -> None:
    """OTEL_EXPORTER_OTLP_HEADERS on every signal's requests (values percent-decoded, as
    the spec says); OTEL_EXPORTER_OTLP_TRACES_HEADERS replaces them for traces."""
    run_child(
        child_env(
            OTEL_SERVICE_NAME="otlp-headers-test",
            OTEL_EXPORTER_OTLP_ENDPOINT=otlp_sink.endpoint,
            OTEL_EXPORTER_OTLP_HEADERS="x-tenant=acme,authorization=Bearer%20t0ken",
            OTEL_EXPORTER_OTLP_TRACES_HEADERS="x-tenant=traces-only",
        )
    )
    by_path: dict[str, list[tuple[dict[str, str], bytes]]] = {}
    for path, headers, body in otlp_sink.requests:
        by_path.setdefault(path, []).append((headers, body))
    assert set(by_path) == {"/v1/traces", "/v1/logs", "/v1/metrics"}, list(by_path)
    for path in ("/v1/logs", "/v1/metrics"):
        for headers, _ in by_path[path]:
            assert headers["x-tenant"] == "acme", (path, headers)
            assert headers["authorization"] == "Bearer t0ken", (path, headers)
            assert headers["content-type"] == "application/x-protobuf"
    for headers, _ in by_path["/v1/traces"]:
        assert headers["x-tenant"] == "traces-only", headers
        assert "authorization" not in headers  # the per-signal list replaces, not merges

    # The bodies are the child's telemetry, so these were its real exports.
    spans = [
        span
        for headers, body in by_path["/v1/traces"]
        for rs in ExportTraceServiceRequest.FromString(body).resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]
    assert len(spans) == 6
    records = [
        record
        for headers, body in by_path["/v1/logs"]
        for rl in ExportLogsServiceRequest.FromString(body).resource_logs
        for sl in rl.scope_logs
        for record in sl.log_records
    ]
    assert len(records) == 9
    metric_names = {
        metric.name
        for headers, body in by_path["/v1/metrics"]
        for rm in ExportMetricsServiceRequest.FromString(body).resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    }
    assert "tdd_epics_created_total" in metric_names
