"""The seed's Streamlit app under ``otel-tdd run``, clicked in a real headless Chromium.

``otel-tdd run streamlit run examples/streamlit_app.py`` with the real Collector
as the OTLP endpoint and export intervals of ten minutes: nothing leaves the
app while the browser works, so everything the Collector holds afterwards came
through the flush that SIGTERM caused. The browser loads the page, creates an
epic (a widget rerun) and triggers the page's failure; then the app is stopped.

Chromium is Debian's (``apt-get install chromium``), driven by Playwright
without its browser download. A missing Chromium, Playwright or Collector
fails the test: a green run means the real parts ran.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import CHROMIUM_FLAGS, chromium_path, sync_playwright
from run_helpers import EXAMPLES, FLUSH_ONLY_AT_EXIT, OTEL_TDD, clean_env, http_get, running

from otel_tdd.stack import process

pytestmark = pytest.mark.e2e

SERVICE = "tdd-streamlit"
RERUN_SPAN = "rerun streamlit_app"


def drive_browser(url: str) -> None:
    """Load the page, create an epic, trigger the failure; each waits for the page to show it."""
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        browser = playwright.chromium.launch_persistent_context(
            profile, executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = browser.new_page()
            page.goto(url)
            create = page.get_by_role("button", name="Create epic")
            create.wait_for(timeout=60_000)
            create.click()
            page.get_by_text("Created epic").wait_for(timeout=30_000)
            page.get_by_role("button", name="Simulate a failure").click()
            page.get_by_text("simulated failure in the board page").first.wait_for(timeout=30_000)
        finally:
            browser.close()


def ours(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("service_name") == SERVICE]


def test_reruns_logs_and_metrics_of_a_clicked_streamlit_app_reach_the_collector(
    collector: Any, tmp_path: Path, compat_row: Callable[..., None]
) -> None:
    chromium_path()  # fail before starting anything when there is no browser
    port, ops_port = process.free_ports(2)
    home = tmp_path / "home"
    home.mkdir()
    argv = [
        OTEL_TDD, "run",
        "--service-name", SERVICE,
        "--endpoint", collector.otlp_http_endpoint,
        "--ops-port", str(ops_port),
        "streamlit", "run", str(EXAMPLES / "streamlit_app.py"),
        "--server.headless", "true",
        "--server.address", "127.0.0.1",
        "--server.port", str(port),
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    env = clean_env({**FLUSH_ONLY_AT_EXIT, "HOME": str(home)})
    with running(argv, env, tmp_path, "streamlit") as app:
        app.wait_http(f"http://127.0.0.1:{port}/_stcore/health")
        ready = app.wait_http(f"http://127.0.0.1:{ops_port}/health/ready")
        assert '"ready"' in ready
        drive_browser(f"http://127.0.0.1:{port}/")
        assert not ours(collector.spans()), "spans left before the stop: the test proves nothing"

        exit_code = app.terminate()
        assert exit_code == 0, app.output()
        stdout_records = app.json_lines()

    def reruns() -> list[dict[str, Any]]:
        spans = [s for s in ours(collector.spans()) if s["name"] == RERUN_SPAN]
        return spans if len(spans) >= 3 else []

    spans = collector.wait_for(reruns, 30, "three rerun spans after SIGTERM")
    assert all(s["kind"] == "SERVER" for s in spans)
    sessions = {s["attributes"]["streamlit.session_id"] for s in spans}
    assert len(sessions) == 1, sessions  # one browser tab: one Streamlit session
    (session_id,) = sessions
    assert len({s["trace_id"] for s in spans}) == len(spans)  # each rerun is its own trace

    # The click is visible: the rerun it caused names the widget (its key, not its value).
    (created,) = [
        s for s in spans if "create_epic" in s["attributes"].get("streamlit.widgets.changed", [])
    ]
    assert created["status_code"] != "ERROR"
    assert any(e["name"] == "streamlit.widget_interaction" for e in created["events"])
    (failed,) = [s for s in spans if s["status_code"] == "ERROR"]
    assert failed["attributes"]["streamlit.rerun.status"] == "error"
    assert "simulate_failure" in failed["attributes"]["streamlit.widgets.changed"]
    (exception,) = [e for e in failed["events"] if e["name"] == "exception"]
    assert exception["attributes"]["exception.type"] == "RuntimeError"
    # The app's own spans are children in the rerun's trace.
    assert any(
        s["trace_id"] == created["trace_id"] and s["name"] != RERUN_SPAN
        for s in ours(collector.spans())
    )

    # Logs: every record of a rerun carries its trace id and, from baggage, the session id.
    def logs_of(trace_id: str) -> list[dict[str, Any]]:
        return [r for r in ours(collector.logs()) if r["trace_id"] == trace_id]

    created_logs = collector.wait_for(lambda: logs_of(created["trace_id"]), 15, "rerun logs")
    assert {"Rendering page: board", "Creating new epic"} <= {r["body"] for r in created_logs}
    assert all(r["attributes"].get("session_id") == session_id for r in created_logs)
    error_logs = [r for r in logs_of(failed["trace_id"]) if r["severity_text"] == "ERROR"]
    # One uncaught exception, one ERROR record (not Streamlit's and ours: issue 13).
    assert len(error_logs) == 1, error_logs
    assert "RuntimeError" in error_logs[0]["attributes"].get("exception.stacktrace", "")
    stdout_errors = [r for r in stdout_records if r["level"] == "ERROR"]
    assert len(stdout_errors) == 1 and stdout_errors[0]["trace_id"] == failed["trace_id"]

    # The same records as JSON lines on stdout, correlation_id being the trace id.
    stdout_created = [r for r in stdout_records if r.get("correlation_id") == created["trace_id"]]
    assert {r["message"] for r in stdout_created} >= {"Creating new epic"}
    assert all(r["session_id"] == session_id for r in stdout_created)
    # Streamlit's own log lines are JSON too (OTEL_TDD_FRAMEWORK_LOGS), not plain text.
    assert any(
        r["logger"].startswith("streamlit.") and "server started on 127.0.0.1" in r["message"]
        for r in stdout_records
    ), app.output()

    # Metrics: the app's catalog and the rerun latency, also only from the final flush.
    def metric(name: str) -> list[dict[str, Any]]:
        return [p for p in ours(collector.metrics()) if p["name"] == name]

    epics = collector.wait_for(lambda: metric("tdd_epics_created_total"), 15, "epic counter")
    assert epics[-1]["value"] >= 1
    reruns_timed = [
        p for p in metric("tdd_response_time_seconds") if p["attributes"].get("method") == "RERUN"
    ]
    assert sum(p["count"] for p in reruns_timed) >= 3
    assert {p["attributes"]["status"] for p in reruns_timed} >= {"ok", "error"}

    compat_row(
        "streamlit",
        "streamlit run examples/streamlit_app.py, clicked in headless Chromium",
        [
            "one rerun span per rerun, the clicked widget named",
            "rerun log records carry trace id and session id (stdout, OTLP)",
            "an uncaught exception is one error span and one ERROR record",
            "streamlit's own lines are JSON",
            "everything flushed at SIGTERM, exit 0",
        ],
    )


def test_the_streamlit_server_check_is_critical_until_the_runtime_runs() -> None:
    """No Streamlit runtime in this process: the check registered on instrumenting fails."""
    from otel_tdd.integrations.streamlit import _server_check

    result = _server_check()
    assert result["status"] == "critical"
    assert "not started" in result["message"]


def test_health_on_the_ops_server_reports_the_streamlit_server(tmp_path: Path) -> None:
    """Streamlit has no custom routes: /health is on the ops server, with Streamlit's state."""
    port, ops_port = process.free_ports(2)
    argv = [
        OTEL_TDD, "run", "--ops-port", str(ops_port),
        "streamlit", "run", str(EXAMPLES / "streamlit_app.py"),
        "--server.headless", "true", "--server.address", "127.0.0.1",
        "--server.port", str(port), "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    home = tmp_path / "home"
    home.mkdir()
    with running(argv, clean_env({"HOME": str(home)}), tmp_path, "streamlit") as app:
        app.wait_http(f"http://127.0.0.1:{port}/_stcore/health")
        app.wait_http(f"http://127.0.0.1:{ops_port}/health/ready")
        status, body = http_get(f"http://127.0.0.1:{ops_port}/health")
        assert status == 200, body
        check = json.loads(body)["checks"]["streamlit_server"]
        assert check["status"] == "healthy", check
        assert check["state"] in ("NO_SESSIONS_CONNECTED", "ONE_OR_MORE_SESSIONS_CONNECTED")
        assert app.terminate() == 0, app.output()
