"""A real app process exports spans, logs and metrics over OTLP to the real Collector.

The child is configured only through the standard variables, as a user would.
Every OTLP log record must carry the trace id of a span that arrived too, and
the JSON it printed on stdout must agree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

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
