"""HealthMonitor: the seed's API and output shape, bounded and cached runs, probes, telemetry."""

from __future__ import annotations

import re
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from otel_tdd import _runtime
from otel_tdd.health import monitor
from otel_tdd.health_check import (
    HealthMonitor,
    HealthResponse,
    alertmanager_check,
    clear_shutting_down,
    database_check,
    default_monitor,
    disk_space_check,
    is_shutting_down,
    mark_shutting_down,
    memory_check,
    otlp_endpoint_check,
    set_default_monitor,
)


@pytest.fixture(autouse=True)
def _not_shutting_down() -> Iterator[None]:
    clear_shutting_down()
    yield
    clear_shutting_down()


def healthy() -> dict[str, Any]:
    return {"status": "healthy", "message": "fine"}


# --- registration ----------------------------------------------------------------------------


def test_register_check_works_as_bare_decorator_named_decorator_and_plain_call() -> None:
    health = HealthMonitor()

    @health.register_check
    def bare() -> dict[str, Any]:
        return {"status": "healthy"}

    @health.register_check("epic_sync_status")
    def check_epic_sync() -> dict[str, Any]:
        return {"status": "healthy", "message": "Sync current"}

    @health.register_check(critical=False, timeout_s=1)
    def options_only() -> dict[str, Any]:
        return {"status": "healthy"}

    health.register_check("plain", healthy)
    health.register_check("plain_with_options", healthy, critical=False, timeout_s=0.5)

    # The decorators return the function itself, still callable by the app.
    assert bare() == {"status": "healthy"}
    assert health.check_names() == [
        "bare",
        "epic_sync_status",
        "options_only",
        "plain",
        "plain_with_options",
    ]
    assert list(health.run_all_checks()["checks"]) == health.check_names()


@pytest.mark.parametrize(
    ("call", "error", "text"),
    [
        (lambda h: h.register_check("dup", healthy), ValueError, "already registered"),
        (lambda h: h.register_check("dup")(healthy), ValueError, "already registered"),
        (lambda h: h.register_check("dup"), ValueError, "already registered"),
        (lambda h: h.register_check("x", healthy, timeout_s=-1), ValueError, "timeout_s=-1"),
        (lambda h: h.register_check("x", healthy, timeout_s=0), ValueError, "timeout_s=0"),
        (lambda h: h.register_check("x", timeout_s=float("nan")), ValueError, "timeout_s=nan"),
        (lambda h: h.register_check("x", healthy, timeout_s="5"), TypeError, "timeout_s='5'"),
        (lambda h: h.register_check("x", "not callable"), TypeError, "not callable"),
        (lambda h: h.register_check("  ", healthy), ValueError, "non-empty"),
        (lambda h: h.register_check(42, healthy), TypeError, "42"),
        (lambda h: h.register_check("x", healthy, critical="yes"), TypeError, "critical='yes'"),
    ],
)
def test_bad_registration_fails_at_registration_with_a_clear_error(
    call: Any, error: type[Exception], text: str
) -> None:
    health = HealthMonitor()
    health.register_check("dup", healthy)
    with pytest.raises(error, match=re.escape(text)):
        call(health)
    assert health.check_names() == ["dup"]


def test_duplicate_name_fails_on_the_decorator_line_not_at_first_run() -> None:
    health = HealthMonitor()

    @health.register_check("db")
    def first() -> dict[str, Any]:
        return {"status": "healthy"}

    with pytest.raises(ValueError, match="'db' is already registered"):

        @health.register_check("db")
        def second() -> dict[str, Any]:
            return {"status": "healthy"}


def test_unregister_check_removes_it() -> None:
    health = HealthMonitor()
    health.register_check("a", healthy)
    health.unregister_check("a")
    assert health.run_all_checks()["summary"]["total"] == 0
    with pytest.raises(KeyError):
        health.unregister_check("a")


def test_bad_monitor_settings_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="cache_ttl_s=-1"):
        HealthMonitor(cache_ttl_s=-1)
    with pytest.raises(ValueError, match="default_timeout_s=0"):
        HealthMonitor(default_timeout_s=0)
    with pytest.raises(ValueError, match="heartbeat_timeout_s=-2"):
        HealthMonitor(heartbeat_timeout_s=-2)


# --- the report ------------------------------------------------------------------------------


def test_run_all_checks_returns_the_seeds_health_check_output_shape() -> None:
    health = HealthMonitor()
    health.register_check(
        "database_connection",
        lambda: {"status": "healthy", "response_time_ms": 2.5, "message": "Database responsive"},
    )
    health.register_check(
        "memory_usage",
        lambda: {"status": "warning", "usage_percent": 78.5, "message": "Memory usage elevated"},
    )

    @health.register_check("epic_sync_status")
    def check_epic_sync() -> dict[str, Any]:
        return {"status": "healthy", "last_sync": "2025-08-17T10:25:00Z", "message": "Sync current"}

    status = health.run_all_checks()

    assert set(status) == {
        "overall_status",
        "timestamp",
        "checks",
        "summary",
        "healthy_count",
        "critical_count",
    }
    assert status["overall_status"] == "warning"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", status["timestamp"])
    assert status["checks"] == {
        "database_connection": {
            "status": "healthy",
            "response_time_ms": 2.5,
            "message": "Database responsive",
        },
        "memory_usage": {
            "status": "warning",
            "usage_percent": 78.5,
            "message": "Memory usage elevated",
        },
        "epic_sync_status": {
            "status": "healthy",
            "last_sync": "2025-08-17T10:25:00Z",
            "message": "Sync current",
        },
    }
    assert status["summary"] == {"healthy": 2, "warning": 1, "critical": 0, "total": 3}
    # What the seed's example prints.
    assert (status["healthy_count"], status["critical_count"]) == (2, 0)


def test_the_returned_report_is_the_callers_copy() -> None:
    health = HealthMonitor(cache_ttl_s=60)
    health.register_check("a", healthy)
    health.run_all_checks()["checks"]["a"]["status"] = "mangled"
    assert health.run_all_checks()["checks"]["a"]["status"] == "healthy"


def test_a_check_that_raises_is_critical_with_the_reason_and_the_others_still_run() -> None:
    health = HealthMonitor()

    @health.register_check("broken")
    def broken() -> dict[str, Any]:
        raise ConnectionError("db refused")

    health.register_check("fine", healthy)
    status = health.run_all_checks()

    assert status["checks"]["broken"]["status"] == "critical"
    assert "ConnectionError: db refused" in status["checks"]["broken"]["message"]
    assert status["checks"]["fine"]["status"] == "healthy"
    assert status["overall_status"] == "critical"


@pytest.mark.parametrize(
    ("returned", "reason"),
    [
        (None, "returned NoneType"),
        ("ok", "returned str"),
        ({"status": "ok"}, "status='ok'"),
        ({"message": "no status"}, "status=None"),
    ],
)
def test_a_malformed_result_is_critical_with_the_reason(returned: Any, reason: str) -> None:
    health = HealthMonitor()
    health.register_check("odd", lambda: returned)
    result = health.run_all_checks()["checks"]["odd"]
    assert result["status"] == "critical"
    assert reason in result["message"]


def test_status_case_is_normalized_and_a_missing_message_is_filled_in() -> None:
    health = HealthMonitor()
    health.register_check("a", lambda: {"status": "Warning"})
    assert health.run_all_checks()["checks"]["a"] == {
        "status": "warning",
        "message": "a is warning",
    }


def test_a_check_that_hangs_times_out_as_critical_within_a_bounded_time() -> None:
    release = threading.Event()
    calls = []

    health = HealthMonitor(cache_ttl_s=0)

    @health.register_check("hangs", timeout_s=0.2)
    def hangs() -> dict[str, Any]:
        calls.append(1)
        release.wait(30)
        return {"status": "healthy"}

    health.register_check("fine", healthy)
    try:
        started = time.monotonic()
        status = health.run_all_checks()
        assert time.monotonic() - started < 2.0  # bounded, not a benchmark
        assert status["checks"]["hangs"]["status"] == "critical"
        assert "timed out after 0.2s" in status["checks"]["hangs"]["message"]
        assert status["checks"]["fine"]["status"] == "healthy"

        # Still stuck: not started a second time, so a hung dependency costs one thread.
        again = health.run_all_checks()
        assert "still running from an earlier run" in again["checks"]["hangs"]["message"]
        assert len(calls) == 1
    finally:
        release.set()

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if health.run_all_checks()["checks"]["hangs"]["status"] == "healthy":
            break
        time.sleep(0.02)
    assert health.run_all_checks()["checks"]["hangs"]["status"] == "healthy"


def test_checks_run_concurrently() -> None:
    # Each check waits for the other: run one after the other, both would time out.
    barrier = threading.Barrier(2, timeout=5)
    health = HealthMonitor()

    def meets_the_other() -> dict[str, Any]:
        barrier.wait()
        return {"status": "healthy"}

    health.register_check("a", meets_the_other)
    health.register_check("b", meets_the_other)
    assert health.run_all_checks()["summary"]["healthy"] == 2


def test_results_are_cached_and_a_probe_storm_runs_the_checks_once() -> None:
    calls = []
    health = HealthMonitor(cache_ttl_s=60)

    @health.register_check("counted")
    def counted() -> dict[str, Any]:
        calls.append(1)
        time.sleep(0.05)
        return {"status": "healthy"}

    threads = [threading.Thread(target=health.get_readiness_status) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    health.run_all_checks()
    assert len(calls) == 1

    health.run_all_checks(use_cache=False)
    assert len(calls) == 2


def test_cache_ttl_zero_runs_every_time() -> None:
    calls = []
    health = HealthMonitor(cache_ttl_s=0)
    health.register_check("counted", lambda: calls.append(1) or {"status": "healthy"})
    health.run_all_checks()
    health.run_all_checks()
    assert len(calls) == 2


def test_a_failing_non_critical_check_degrades_to_warning_and_keeps_readiness() -> None:
    health = HealthMonitor()
    health.register_check("fine", healthy)
    health.register_check("telemetry", lambda: {"status": "critical"}, critical=False)

    assert health.run_all_checks()["overall_status"] == "warning"
    body, code = health.get_readiness_status()
    assert code == 200
    assert body["status"] == "ready"


def test_no_checks_is_healthy() -> None:
    status = HealthMonitor().run_all_checks()
    assert status["overall_status"] == "healthy"
    assert status["summary"] == {"healthy": 0, "warning": 0, "critical": 0, "total": 0}


# --- probes ----------------------------------------------------------------------------------


def test_probe_responses_are_body_and_status_tuples_usable_by_any_framework() -> None:
    health = HealthMonitor()
    response = health.get_liveness_status()
    assert isinstance(response, tuple)
    body, code = response
    assert response == HealthResponse(body, code)
    assert code == 200
    assert response.ok
    assert body["status"] == "alive"
    assert response.json_bytes().startswith(b'{"status":"alive"')


def test_readiness_fails_on_a_critical_check_but_liveness_does_not() -> None:
    health = HealthMonitor()
    health.register_check("db", lambda: {"status": "critical", "message": "down"})
    health.register_check("cache", healthy)

    ready = health.get_readiness_status()
    assert ready.status_code == 503
    assert ready.body["status"] == "not_ready"
    assert ready.body["failing"] == ["db"]
    assert "db" in ready.body["reason"]

    assert health.get_liveness_status().status_code == 200

    detailed = health.get_detailed_status()
    assert detailed.status_code == 503
    assert detailed.body["overall_status"] == "critical"


def test_readiness_is_503_while_shutting_down_and_checks_are_not_consulted() -> None:
    calls = []
    health = HealthMonitor()
    health.register_check("counted", lambda: calls.append(1) or {"status": "healthy"})

    assert health.get_readiness_status().status_code == 200
    mark_shutting_down()
    assert is_shutting_down()
    ready = health.get_readiness_status()
    assert ready.status_code == 503
    assert ready.body["reason"] == "shutting down"
    assert len(calls) == 1

    detailed = health.get_detailed_status()
    assert detailed.status_code == 503
    assert detailed.body["shutting_down"] is True
    # Liveness stays up: a draining pod must not be restarted.
    assert health.get_liveness_status().status_code == 200


def test_liveness_fails_when_the_heartbeat_stops() -> None:
    health = HealthMonitor(heartbeat_timeout_s=0.05)
    health.heartbeat()
    assert health.get_liveness_status().status_code == 200
    time.sleep(0.1)
    wedged = health.get_liveness_status()
    assert wedged.status_code == 503
    assert wedged.body["status"] == "wedged"
    assert "no heartbeat" in wedged.body["reason"]
    health.heartbeat()
    assert health.get_liveness_status().status_code == 200


def test_liveness_fails_when_a_check_run_is_stuck_beyond_every_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    health = HealthMonitor(default_timeout_s=0.1)
    monkeypatch.setattr(monitor, "STUCK_GRACE_S", 0.0)
    health._run_started = time.monotonic() - 1.0  # a run that never ended
    wedged = health.get_liveness_status()
    assert wedged.status_code == 503
    assert "stuck" in wedged.body["reason"]


def test_default_monitor_is_one_per_process_and_replaceable() -> None:
    original = default_monitor()
    try:
        assert default_monitor() is original
        mine = HealthMonitor()
        set_default_monitor(mine)
        assert default_monitor() is mine
        with pytest.raises(TypeError):
            set_default_monitor("not a monitor")  # type: ignore[arg-type]
    finally:
        set_default_monitor(original)


# --- telemetry -------------------------------------------------------------------------------


def test_every_run_sets_the_status_gauge_and_records_the_duration(otel_capture: Any) -> None:
    health = HealthMonitor(cache_ttl_s=0)
    health.register_check("ok", healthy)
    health.register_check("slowish", lambda: {"status": "warning"})
    health.register_check("down", lambda: {"status": "critical"})
    health.run_all_checks()
    health.run_all_checks()

    value = otel_capture.metric_value
    assert value("tdd_health_check_status", {"check": "ok"}) == 1.0
    assert value("tdd_health_check_status", {"check": "slowish"}) == 0.5
    assert value("tdd_health_check_status", {"check": "down"}) == 0.0
    assert value("tdd_health_check_duration_seconds", {"check": "ok"}) == 2  # histogram count


def test_a_change_of_status_is_logged_once_not_on_every_run(otel_capture: Any) -> None:
    state = {"status": "healthy"}
    health = HealthMonitor(cache_ttl_s=0)
    health.register_check("db", lambda: dict(state, message="from test"))

    health.run_all_checks()  # healthy from the start: nothing to say
    state["status"] = "critical"
    health.run_all_checks()
    health.run_all_checks()
    state["status"] = "healthy"
    health.run_all_checks()

    messages = [
        (r["level"], r["message"])
        for r in otel_capture.records()
        if r["logger"] == "otel_tdd.health"
    ]
    assert messages == [
        ("ERROR", "Health check db is critical"),
        ("INFO", "Health check db recovered"),
    ]


# --- built-in checks -------------------------------------------------------------------------


def test_database_check_on_sqlite_reports_response_time(tmp_path: Path, otel_capture: Any) -> None:
    path = tmp_path / "framework.db"
    sqlite3.connect(path).close()
    health = HealthMonitor()
    health.register_check("database_connection", database_check(path))
    result = health.run_all_checks()["checks"]["database_connection"]
    assert result["status"] == "healthy"
    assert result["message"] == "Database responsive"
    assert result["response_time_ms"] >= 0
    assert otel_capture.metric_value("tdd_database_up", {"database": "framework.db"}) == 1


def test_database_check_on_a_missing_sqlite_file_is_critical_and_creates_nothing(
    tmp_path: Path, otel_capture: Any
) -> None:
    path = tmp_path / "missing.db"
    result = database_check(path)()
    assert result["status"] == "critical"
    assert "Database unreachable" in result["message"]
    assert not path.exists()
    assert otel_capture.metric_value("tdd_database_up", {"database": "missing.db"}) == 0
    assert (
        otel_capture.metric_value(
            "tdd_database_connections_failed_total", {"database": "missing.db"}
        )
        == 1
    )


def test_database_check_takes_any_dbapi_connect_callable(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    assert database_check(lambda: sqlite3.connect(path), database="app")()["status"] == "healthy"

    def refuses() -> Any:
        raise OSError("connection refused")

    result = database_check(refuses)()
    assert result["status"] == "critical"
    assert "connection refused" in result["message"]


def test_database_check_warns_when_slow(tmp_path: Path) -> None:
    def slow_connect() -> Any:
        time.sleep(0.02)
        return sqlite3.connect(tmp_path / "slow.db")

    assert database_check(slow_connect, warning_ms=1)()["status"] == "warning"


def test_database_check_rejects_a_bad_target() -> None:
    with pytest.raises(TypeError, match="SQLite path or a DB-API connect callable"):
        database_check(42)  # type: ignore[arg-type]


def test_memory_check_reports_rss_and_percent() -> None:
    result = memory_check()()
    assert result["status"] in ("healthy", "warning", "critical")
    assert result["rss_bytes"] > 1_000_000
    assert 0 < result["usage_percent"] <= 100
    assert result["memory_scope"] in ("cgroup", "system")

    assert memory_check(warning_percent=0.001, critical_percent=100)()["status"] in (
        "warning",
        "critical",
    )
    assert memory_check(rss_critical_bytes=1)()["status"] == "critical"


def test_memory_and_disk_thresholds_are_validated() -> None:
    with pytest.raises(ValueError, match="above critical_percent"):
        memory_check(warning_percent=95, critical_percent=90)
    with pytest.raises(ValueError, match="critical_percent=150"):
        disk_space_check("/", critical_percent=150)
    with pytest.raises(ValueError, match="rss_warning_bytes=-1"):
        memory_check(rss_warning_bytes=-1)


def test_disk_space_check(tmp_path: Path) -> None:
    result = disk_space_check(tmp_path, warning_percent=99.99, critical_percent=100)()
    assert result["path"] == str(tmp_path)
    assert result["free_bytes"] > 0
    assert (
        disk_space_check(tmp_path, warning_percent=0.0001, critical_percent=0.0001)()["status"]
        == "critical"
    )


def test_otlp_endpoint_check_connects_over_tcp() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        result = otlp_endpoint_check(f"http://127.0.0.1:{port}")()
        assert result["status"] == "healthy"
        assert result["message"] == "OTLP endpoint reachable"
    finally:
        listener.close()
    result = otlp_endpoint_check(f"http://127.0.0.1:{port}")()
    assert result["status"] == "critical"
    assert "unreachable" in result["message"]


def test_otlp_endpoint_check_defaults_to_the_exporters_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector.invalid:4318")
    # The exporter's URL exactly: OTLP/HTTP appends the signal's path to the generic one.
    assert otlp_endpoint_check()()["endpoint"] == "http://collector.invalid:4318/v1/traces"


class _Alertmanager(BaseHTTPRequestHandler):
    code = 200

    def do_GET(self) -> None:
        status = self.code if self.path == "/-/healthy" else 404
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


def test_alertmanager_check_asks_its_health_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Alertmanager)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert alertmanager_check(url)()["status"] == "healthy"
        monkeypatch.setattr(_Alertmanager, "code", 500)
        result = alertmanager_check(url)()
        assert result["status"] == "critical"
        assert result["http_status"] == 500
    finally:
        server.shutdown()
        server.server_close()
    assert alertmanager_check(url)()["status"] == "critical"


def test_alertmanager_check_without_a_url_fails_at_registration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_TDD_ALERTMANAGER_URL", raising=False)
    monkeypatch.setattr(_runtime, "RUNTIME", None)
    with pytest.raises(ValueError, match="OTEL_TDD_ALERTMANAGER_URL"):
        alertmanager_check()


def test_builtin_checks_register_in_one_line_each(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "framework.db").close()
    health = HealthMonitor()
    health.register_check("database_connection", database_check(tmp_path / "framework.db"))
    health.register_check("memory_usage", memory_check())
    health.register_check("disk_space", disk_space_check(tmp_path))
    health.register_check(
        "otlp_endpoint", otlp_endpoint_check("http://127.0.0.1:9"), critical=False
    )
    status = health.run_all_checks()
    assert status["summary"]["total"] == 4
    assert status["checks"]["otlp_endpoint"]["status"] == "critical"
    # The telemetry backend being down degrades; it does not fail readiness.
    assert "otlp_endpoint" not in health.get_readiness_status().body.get("failing", [])
