"""The ops server: probe and /metrics endpoints over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

import otel_tdd
from otel_tdd import lifecycle
from otel_tdd.health_check import (
    HealthMonitor,
    HealthResponse,
    clear_shutting_down,
    default_monitor,
    mark_shutting_down,
    set_default_monitor,
)
from otel_tdd.metrics import catalog
from otel_tdd.ops_server import METRICS_CONTENT_TYPE, OpsServer, OpsServerError, start_ops_server


@pytest.fixture(autouse=True)
def _not_shutting_down() -> Iterator[None]:
    clear_shutting_down()
    yield
    clear_shutting_down()


@pytest.fixture
def monitor() -> HealthMonitor:
    health = HealthMonitor()
    health.register_check("database", lambda: {"status": "healthy", "message": "ok"})
    return health


@pytest.fixture
def server(monitor: HealthMonitor, otel_capture: Any) -> Iterator[OpsServer]:
    with start_ops_server("127.0.0.1", 0, monitor) as running:
        yield running


def get(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def test_health_endpoints_answer_with_json_and_the_probe_status(server: OpsServer) -> None:
    code, headers, body = get(server.url + "/health")
    assert code == 200
    assert headers["Content-Type"] == "application/json"
    report = json.loads(body)
    assert report["overall_status"] == "healthy"
    assert report["checks"]["database"]["status"] == "healthy"

    code, _, body = get(server.url + "/health/live")
    assert (code, json.loads(body)["status"]) == (200, "alive")

    code, _, body = get(server.url + "/health/ready")
    assert (code, json.loads(body)["status"]) == (200, "ready")


def test_a_critical_check_makes_ready_and_health_503_but_not_live(otel_capture: Any) -> None:
    health = HealthMonitor()
    health.register_check("database", lambda: {"status": "critical", "message": "down"})
    with start_ops_server("127.0.0.1", 0, health) as running:
        assert get(running.url + "/health/ready")[0] == 503
        assert get(running.url + "/health")[0] == 503
        assert get(running.url + "/health/live")[0] == 200


def test_readiness_is_503_while_shutting_down(server: OpsServer) -> None:
    mark_shutting_down()
    code, _, body = get(server.url + "/health/ready")
    assert code == 503
    assert json.loads(body)["reason"] == "shutting down"


def test_metrics_serves_every_metric_the_app_records_in_prometheus_text(
    server: OpsServer,
) -> None:
    catalog.epics_created.add(3, {"priority": "high"})
    code, headers, body = get(server.url + "/metrics")
    assert code == 200
    assert headers["Content-Type"] == METRICS_CONTENT_TYPE
    text = body.decode()
    assert re.search(r'^tdd_epics_created_total\{[^}]*priority="high"[^}]*\} 3\.0$', text, re.M)
    # A scrape refreshes the health gauges, so Prometheus sees them without a probe.
    assert re.search(r'^tdd_health_check_status\{check="database"[^}]*\} 1\.0$', text, re.M)


def test_other_paths_are_404_head_has_no_body_and_other_methods_are_refused(
    server: OpsServer,
) -> None:
    assert get(server.url + "/")[0] == 404
    assert get(server.url + "/health/../secrets")[0] == 404
    assert get(server.url + "/healthz")[0] == 404
    code, headers, body = get(server.url + "/health/ready", method="HEAD")
    assert code == 200
    assert int(headers["Content-Length"]) > 0
    assert body == b""
    assert get(server.url + "/health", method="POST")[0] == 501
    # A query string does not change the route.
    assert get(server.url + "/health/live?verbose=1")[0] == 200


def raw(server: OpsServer, payload: bytes) -> bytes:
    with socket.create_connection((server.host, server.port), timeout=10) as conn:
        conn.sendall(payload)
        chunks = []
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def test_bad_requests_get_an_error_and_the_server_keeps_serving(server: OpsServer) -> None:
    # Not HTTP/1.x: the stdlib answers in HTTP/0.9 style, a bare error page.
    assert b"400" in raw(server, b"\x00\x01\x02 garbage\r\n\r\n")
    assert b" 414 " in raw(server, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n")
    assert b"505" in raw(server, b"GET /health HTTP/9.9\r\n\r\n")
    too_many_headers = b"GET /health HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n"
    assert b" 431 " in raw(server, too_many_headers)
    # A client that connects and leaves, or sends half a request and leaves.
    socket.create_connection((server.host, server.port)).close()
    with socket.create_connection((server.host, server.port)) as half:
        half.sendall(b"GET /health/ready HTTP/1.1\r\nHost: x")
    assert get(server.url + "/health/ready")[0] == 200


def test_an_error_inside_a_probe_is_a_500_not_a_crash(otel_capture: Any) -> None:
    class Broken(HealthMonitor):
        def get_detailed_status(self) -> HealthResponse:
            raise RuntimeError("bug in a probe")

    with start_ops_server("127.0.0.1", 0, Broken()) as running:
        code, _, body = get(running.url + "/health")
        assert code == 500
        assert b"RuntimeError" in body
        assert b"bug in a probe" not in body  # no internals to the network
        assert get(running.url + "/health/live")[0] == 200
    errors = [r for r in otel_capture.records() if r["logger"] == "otel_tdd.ops_server"]
    assert errors[0]["data"]["error_type"] == "RuntimeError"


def test_keep_alive_serves_several_requests_on_one_connection(server: OpsServer) -> None:
    request = b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection((server.host, server.port), timeout=10) as conn:
        reader = conn.makefile("rb")
        for _ in range(3):
            conn.sendall(request)
            status = reader.readline()
            assert status.startswith(b"HTTP/1.1 200")
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            reader.read(length)


def test_many_concurrent_probes_all_get_an_answer(server: OpsServer) -> None:
    codes: list[int] = []
    lock = threading.Lock()

    def probe() -> None:
        for path in ("/health/ready", "/health/live", "/metrics", "/health") * 5:
            code = get(server.url + path)[0]
            with lock:
                codes.append(code)

    threads = [threading.Thread(target=probe) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes == [200] * 16 * 20


def test_requests_beyond_the_handler_limit_are_shed_with_503(otel_capture: Any) -> None:
    release = threading.Event()
    entered = threading.Event()

    class Slow(HealthMonitor):
        def get_detailed_status(self) -> HealthResponse:
            entered.set()
            release.wait(10)
            return super().get_detailed_status()

    with start_ops_server("127.0.0.1", 0, Slow(), max_connections=1) as running:
        busy = threading.Thread(target=get, args=(running.url + "/health",))
        busy.start()
        try:
            assert entered.wait(5)  # the only handler thread is now busy
            assert b" 503 " in raw(running, b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        finally:
            release.set()
            busy.join(10)
        # The handler is free again.
        deadline = time.monotonic() + 5
        code = get(running.url + "/health/live")[0]
        while code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
            code = get(running.url + "/health/live")[0]
        assert code == 200


def test_an_idle_keep_alive_connection_holds_no_handler(otel_capture: Any) -> None:
    with start_ops_server("127.0.0.1", 0, HealthMonitor(), max_connections=1) as running:
        with socket.create_connection((running.host, running.port)) as idle:
            idle.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            assert idle.recv(100).startswith(b"HTTP/1.1 200")  # kept open
            # Within KEEP_ALIVE_IN_THREAD_S (0.1 s) the connection is parked in the selector.
            time.sleep(0.5)
            assert get(running.url + "/health/live")[0] == 200


def test_a_bad_ops_host_error_names_otel_tdd_ops_host() -> None:
    with pytest.raises(OpsServerError) as caught:
        start_ops_server("192.0.2.55", 0)  # TEST-NET-1: not an address of this machine
    assert "OTEL_TDD_OPS_HOST" in str(caught.value)
    assert "OTEL_TDD_OPS_PORT" not in str(caught.value)


def test_a_port_in_use_is_a_clear_error_naming_the_port_and_the_knob(server: OpsServer) -> None:
    with pytest.raises(OpsServerError) as caught:
        start_ops_server("127.0.0.1", server.port)
    message = str(caught.value)
    assert f"port {server.port} is already in use" in message
    assert "OTEL_TDD_OPS_PORT" in message
    assert isinstance(caught.value, OSError)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="70000"):
        start_ops_server("127.0.0.1", 70000)
    with pytest.raises(ValueError, match="max_connections=0"):
        start_ops_server("127.0.0.1", 0, max_connections=0)
    with pytest.raises(TypeError, match="not a HealthMonitor"):
        start_ops_server("127.0.0.1", 0, "monitor")  # type: ignore[arg-type]


def test_binds_loopback_by_default_and_stop_is_idempotent(otel_capture: Any) -> None:
    running = start_ops_server()
    assert running.host == "127.0.0.1"
    assert running.url == f"http://127.0.0.1:{running.port}"
    assert running.running
    running.stop()
    running.stop()
    assert not running.running
    with pytest.raises(OSError):
        socket.create_connection((running.host, running.port), timeout=2).close()


def test_without_a_monitor_the_default_monitor_answers_even_if_replaced_later(
    otel_capture: Any,
) -> None:
    original = default_monitor()
    with start_ops_server("127.0.0.1", 0) as running:
        mine = HealthMonitor()
        mine.register_check("mine", lambda: {"status": "healthy"})
        set_default_monitor(mine)
        try:
            assert "mine" in json.loads(get(running.url + "/health")[2])["checks"]
        finally:
            set_default_monitor(original)


def test_configure_starts_it_and_shutdown_stops_it() -> None:
    lifecycle.shutdown()
    runtime = otel_tdd.configure("ops-test", ops_port=0, log_stream="none")
    try:
        running = runtime.ops_server
        assert get(running.url + "/health/live")[0] == 200
    finally:
        otel_tdd.shutdown()
    assert not running.running


def test_configure_reads_the_port_from_otel_tdd_ops_port(monkeypatch: pytest.MonkeyPatch) -> None:
    lifecycle.shutdown()
    monkeypatch.setenv("OTEL_TDD_OPS_PORT", "0")
    runtime = otel_tdd.configure("ops-env-test", log_stream="none")
    try:
        assert runtime.ops_server.running
    finally:
        otel_tdd.shutdown()


def test_configure_with_a_busy_port_fails_clearly_and_leaves_nothing_configured() -> None:
    lifecycle.shutdown()
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match=f"port {port} is already in use"):
            otel_tdd.configure("ops-busy", ops_port=port, log_stream="none")
    assert not otel_tdd.is_configured()


def test_past_the_open_connection_cap_the_oldest_waiting_client_makes_room(
    otel_capture: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otel_tdd import ops_server

    monkeypatch.setattr(ops_server, "MAX_OPEN_CONNECTIONS", 8)
    with start_ops_server("127.0.0.1", 0, HealthMonitor()) as running:
        slow = []
        for _ in range(8):
            conn = socket.create_connection((running.host, running.port), timeout=5)
            conn.sendall(b"GET /health/live HTTP/1.1\r\n")  # never finished
            slow.append(conn)
            time.sleep(0.02)  # so that "oldest" is well defined
        try:
            assert get(running.url + "/health/live")[0] == 200
            assert slow[0].recv(100) == b""  # the oldest was closed to make room
        finally:
            for conn in slow:
                conn.close()


def test_a_request_head_that_never_completes_is_dropped_after_the_head_timeout(
    otel_capture: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otel_tdd import ops_server

    monkeypatch.setattr(ops_server, "HEAD_TIMEOUT_S", 0.5)
    with start_ops_server("127.0.0.1", 0, HealthMonitor()) as running:
        with socket.create_connection((running.host, running.port), timeout=5) as conn:
            started = time.monotonic()
            conn.sendall(b"GET /health/live HTTP/1.1\r\n")
            while time.monotonic() - started < 3:
                try:
                    conn.sendall(b"X-Slow: 1\r\n")  # a line every 0.1 s: never idle
                except OSError:
                    break
                time.sleep(0.1)
            assert time.monotonic() - started < 3, "the trickling client was never dropped"
