"""SIGTERM mid-work loses nothing: a real child process, the real Collector.

The child (shutdown_child_app.py) turns out numbered work items, one span and one
log record each, and is sent SIGTERM while it works. Everything it finished
before it noticed the shutdown, and every record and span of its cleanups, must
arrive at the Collector; the cleanups must have run in priority order with
readiness already 503; the exit code must say whether the shutdown was clean.

Most of these items are still in the batch processors' queues when the signal
arrives (the default schedule delay is 5 s): only the final flush, after the
cleanups, can deliver them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

CHILD = Path(__file__).with_name("shutdown_child_app.py")
CLEANUP_ORDER = [
    "stop_accepting_requests",  # priority 1
    "complete_active_requests",  # priority 2
    "cleanup_resources",  # priority 3 (plain-call registration)
]


def read_event(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=10)
        pytest.fail(f"the child exited ({process.returncode}) without saying anything more")
    event: dict[str, Any] = json.loads(line)
    return event


@pytest.mark.parametrize("failing_cleanup", [False, True], ids=["clean", "failing-cleanup"])
def test_sigterm_mid_work_delivers_everything_emitted_and_the_cleanups_records(
    collector: Any, tmp_path: Path, failing_cleanup: bool
) -> None:
    service = f"shutdown-child-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_http_endpoint,
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
    }
    stderr_path = tmp_path / "child.stderr"
    args = [sys.executable, str(CHILD), service]
    if failing_cleanup:
        args.append("--failing-cleanup")
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        ready = read_event(process)
        assert ready["event"] == "ready", ready
        while read_event(process).get("finished", 0) < 100:
            pass  # let it get well into its work
        process.send_signal(signal.SIGTERM)
        finished = None
        while finished is None:
            event = read_event(process)
            if event["event"] == "stopped":
                finished = event["finished"]
        returncode = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr_text = stderr_path.read_text()

    expected_code = 1 if failing_cleanup else 0
    assert returncode == expected_code, stderr_text
    assert 100 <= finished < 1_000_000  # stopped mid-work, not at the end

    def ours(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [item for item in items if item.get("service_name") == service]

    def work_spans() -> list[int]:
        return sorted(
            s["attributes"]["item"] for s in ours(collector.spans()) if s["name"] == "work item"
        )

    def work_logs() -> list[int]:
        return sorted(
            r["attributes"]["data"]["item"]
            for r in ours(collector.logs())
            if r["body"] == "work item done"
        )

    everything = list(range(finished))
    collector.wait_for(lambda: work_spans() == everything, 30, f"{finished} work spans")
    collector.wait_for(lambda: work_logs() == everything, 30, f"{finished} work log records")

    # The cleanups: in priority order, readiness already down, their records and spans out.
    logs = ours(collector.logs())
    cleanup_logs = sorted(
        (r for r in logs if str(r["body"]).startswith("cleanup ")),
        key=lambda r: r["attributes"]["data"]["position"],
    )
    order = [r["attributes"]["data"]["cleanup"] for r in cleanup_logs]
    expected_order = [*CLEANUP_ORDER, *(["flaky_cache_flush"] if failing_cleanup else [])]
    assert order == [*expected_order, "save_user_sessions"], order
    assert cleanup_logs[0]["attributes"]["data"]["readiness_status"] == 503

    bodies = [r["body"] for r in logs if r["attributes"].get("logger") != "shutdown_child"]
    assert "Graceful shutdown started" in bodies
    assert "Graceful shutdown: cleanups finished, flushing telemetry" in bodies
    spans = ours(collector.spans())
    names = {s["name"] for s in spans}
    assert "graceful_shutdown" in names
    assert "drain request queue" in names
    root = next(s for s in spans if s["name"] == "graceful_shutdown")
    cleanup_spans = [s for s in spans if s["name"].startswith("cleanup ")]
    assert len(cleanup_spans) == len(expected_order) + 1
    assert all(s["parent_span_id"] == root["span_id"] for s in cleanup_spans)
    # Every cleanup record is in the shutdown's trace.
    assert {r["trace_id"] for r in cleanup_logs} == {root["trace_id"]}

    if failing_cleanup:
        failed = [r for r in logs if r["body"] == "Cleanup main.<locals>.flaky_cache_flush failed"]
        assert len(failed) == 1
        assert (
            "ConnectionError: cache already gone" in failed[0]["attributes"]["exception.stacktrace"]
        )
        assert root["status_code"] == "ERROR"
    else:
        assert root["status_code"] == "UNSET"
