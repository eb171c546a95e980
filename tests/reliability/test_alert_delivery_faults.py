"""Alert delivery against misbehaving Alertmanagers: every alert is delivered or counted.

Each fault is a tiny server on 127.0.0.1 written here (garbage reply, 150 headers,
a reply trickled byte by byte, no answer, 400 with a body, 500, connection
reset). For each: ``submit()`` returns at once, the alert is counted in
``tdd_alerts_failed_total`` with its true reason, the sender thread survives
(the next alert, to a healthy answer, is delivered), and a post takes no longer
than the client's timeout. Then the real Alertmanager 0.25 (the ``stack``
fixture) with hostile data keys, and the shutdown bound with an Alertmanager
that never answers.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from otel_tdd import _runtime, alert, lifecycle
from otel_tdd.alerting import AlertmanagerClient
from otel_tdd.graceful_shutdown import GracefulShutdown
from otel_tdd.testing import Capture, capture_telemetry
from tests.conftest import StackUnderTest

TIMEOUT_S = 0.5
RETURNS_AT_ONCE_S = 0.050
OK_REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

Behaviour = Callable[[socket.socket, threading.Event], None]


def _read_request(conn: socket.socket) -> None:
    """Read until the end of the JSON body (the client sends it in one go)."""
    data = b""
    conn.settimeout(5)
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return
        body += chunk


def garbage(conn: socket.socket, _stop: threading.Event) -> None:
    conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")


def many_headers(conn: socket.socket, _stop: threading.Event) -> None:
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
    conn.sendall(b"HTTP/1.1 200 OK\r\n" + headers + b"Content-Length: 0\r\n\r\n")


def trickle(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    while not stop.wait(0.1):  # one header byte every 100 ms, never the end
        try:
            conn.sendall(b"X")
        except OSError:
            return


def no_answer(_conn: socket.socket, stop: threading.Event) -> None:
    stop.wait(30)


def bad_request(conn: socket.socket, _stop: threading.Event) -> None:
    body = b'{"code":400,"message":"invalid annotations: invalid name \\"user-id\\""}'
    conn.sendall(
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )


def server_error(conn: socket.socket, _stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")


def reset(conn: socket.socket, _stop: threading.Event) -> None:
    # SO_LINGER 0: close() sends RST instead of FIN.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def healthy(conn: socket.socket, _stop: threading.Event) -> None:
    conn.sendall(OK_REPLY)


class FaultServer:
    """Answers the first POST with ``fault``, every later one with 200."""

    def __init__(self, fault: Behaviour) -> None:
        self.fault = fault
        self.connections = 0
        self.stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            behaviour = self.fault if self.connections == 1 else healthy
            thread = threading.Thread(target=self._handle, args=(conn, behaviour), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _handle(self, conn: socket.socket, behaviour: Behaviour) -> None:
        try:
            if behaviour is not no_answer:
                _read_request(conn)
            behaviour(conn, self.stop)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self._listener.close()
        self._accept.join(5)
        for thread in self._threads:
            thread.join(5)


@pytest.fixture
def fault_server(request: pytest.FixtureRequest) -> Iterator[FaultServer]:
    server = FaultServer(request.param)
    try:
        yield server
    finally:
        server.close()


FAULTS = [
    pytest.param(garbage, "bad_response", id="garbage-reply"),
    pytest.param(many_headers, "bad_response", id="150-headers"),
    pytest.param(trickle, "timeout", id="trickled-reply"),
    pytest.param(no_answer, "timeout", id="no-answer"),
    pytest.param(bad_request, "rejected", id="400-with-body"),
    pytest.param(server_error, "server_error", id="500"),
    pytest.param(reset, "unreachable", id="connection-reset"),
]


def alert_messages(capture: Capture) -> list[str]:
    return [r["message"] for r in capture.records() if r["logger"] == "otel_tdd.alerting"]


@pytest.mark.parametrize(("fault_server", "reason"), FAULTS, indirect=["fault_server"])
def test_a_misbehaving_alertmanager_costs_one_counted_alert_and_the_sender_goes_on(
    fault_server: FaultServer, reason: str
) -> None:
    with capture_telemetry() as capture:
        client = AlertmanagerClient(fault_server.url, timeout_s=TIMEOUT_S)
        try:
            started = time.perf_counter()
            assert client.submit({"labels": {"alertname": "first"}, "annotations": {}})
            assert time.perf_counter() - started < RETURNS_AT_ONCE_S
            posted = time.monotonic()
            assert client.flush(10), "the first alert was never finished"
            # The whole post is bounded by the timeout, trickled reply or not.
            assert time.monotonic() - posted < TIMEOUT_S + 1.5
            assert client.submit({"labels": {"alertname": "second"}, "annotations": {}})
            assert client.flush(10), "the sender thread died: the second alert was never sent"
        finally:
            client.close(2)
        assert capture.metric_value("tdd_alerts_failed_total", {"reason": reason}) == 1
        assert capture.metric_value("tdd_alerts_sent_total") == 1
        failures = [m for m in alert_messages(capture) if "unreachable" in m or "did not take" in m]
        assert len(failures) == 1, failures  # logged once, with the reason
        assert reason in failures[0] or "unreachable" in failures[0]
        if reason == "rejected":
            assert 'invalid name \\"user-id\\"' in failures[0] or "user-id" in failures[0]


def test_every_alert_to_a_faulty_alertmanager_is_sent_or_counted() -> None:
    """30 alerts over the seven faults and healthy answers: nothing vanishes."""
    behaviours = [garbage, many_headers, bad_request, server_error, reset, healthy]
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        n = 0
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                try:
                    _read_request(conn)
                    behaviours[n % len(behaviours)](conn, stop)
                except OSError:
                    pass
            n += 1

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with capture_telemetry() as capture:
            client = AlertmanagerClient(
                f"http://127.0.0.1:{listener.getsockname()[1]}", timeout_s=TIMEOUT_S
            )
            try:
                for i in range(30):
                    assert client.submit({"labels": {"alertname": f"a{i}"}, "annotations": {}})
                assert client.flush(30)
            finally:
                client.close(2)
            failed = sum(
                capture.metric_value("tdd_alerts_failed_total", {"reason": r}) or 0
                for r in ("bad_response", "rejected", "server_error", "unreachable")
            )
            sent = capture.metric_value("tdd_alerts_sent_total") or 0
            assert (sent, failed) == (5, 25)
    finally:
        stop.set()
        listener.close()
        thread.join(5)


@pytest.mark.parametrize("fault_server", [no_answer], indirect=True)
def test_shutdown_with_an_alertmanager_that_never_answers_keeps_its_bound(
    fault_server: FaultServer,
) -> None:
    with capture_telemetry(alertmanager_url=fault_server.url) as capture:
        for i in range(5):
            started = time.perf_counter()
            alert(f"stuck_{i}", {"i": i})
            assert time.perf_counter() - started < RETURNS_AT_ONCE_S
        started = time.monotonic()
        result = GracefulShutdown(flush_timeout_s=2).initiate_shutdown()
        took = time.monotonic() - started
        # 2 s of flush in all; a generous margin for a loaded machine, far below the 10 s
        # (two 5 s waits) it took before.
        assert took < 2 + 1.5, took
        assert result.telemetry_flushed is False  # alerts were lost, and it says so
        lost = capture.metric_value("tdd_alerts_failed_total", {"reason": "shutdown"})
        assert lost == 5, lost


def test_after_shutdown_an_alert_is_counted_not_sent_and_nothing_restarts(
    fault_server_ok: str,
) -> None:
    with capture_telemetry(alertmanager_url=fault_server_ok):
        lifecycle.shutdown()
        # Before, a new client (and sender thread) was started that nothing would close.
        assert alert("late", {}) is False
        assert _runtime.current().alertmanager is None


@pytest.fixture
def fault_server_ok() -> Iterator[str]:
    server = FaultServer(healthy)
    try:
        yield server.url
    finally:
        server.close()


# --- the real Alertmanager ----------------------------------------------------------------

HOSTILE_KEYS = ["user-id", "my key", "1abc", "clé", "http.status", "", "user_id", "名前"]


def am_alerts(stack: StackUnderTest, alertname: str) -> list[dict[str, Any]]:
    query = urllib.parse.quote(f'alertname="{alertname}"')
    url = f"{stack.alertmanager_url}/api/v2/alerts?filter={query}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return list(json.loads(response.read()))


def test_the_real_alertmanager_stores_alerts_with_hostile_data_keys(stack: StackUnderTest) -> None:
    with capture_telemetry(alertmanager_url=stack.alertmanager_url) as capture:
        data = {key: f"value of {key!r}" for key in HOSTILE_KEYS}
        started = time.perf_counter()
        assert alert("HostileKeys", data, severity="warning") is True
        assert time.perf_counter() - started < RETURNS_AT_ONCE_S
        client = _runtime.current().alertmanager
        assert client.flush(10)
        assert capture.metric_value("tdd_alerts_sent_total") == 1
        assert not capture.metric_value("tdd_alerts_failed_total", {"reason": "rejected"})
        (stored,) = stack.wait_for(lambda: am_alerts(stack, "HostileKeys"), 10, "the alert")
        annotations = stored["annotations"]
        # Sanitised names, deterministic and documented (docs/alerting.md).
        assert annotations["user_id"] == "value of 'user_id'"  # a valid key keeps its name
        assert annotations["user_id_2"] == "value of 'user-id'"
        assert annotations["my_key"] == "value of 'my key'"
        assert annotations["_1abc"] == "value of '1abc'"
        assert annotations["cle"] == "value of 'clé'"
        assert annotations["http_status"] == "value of 'http.status'"
        assert annotations["_"] == "value of ''"
        assert annotations["__"] == "value of '名前'"
        # The original keys survive in the description.
        assert set(json.loads(annotations["description"])) == set(HOSTILE_KEYS)
