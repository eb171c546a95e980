"""``alert()`` and the Alertmanager client, against an in-process fake of Alertmanager's API v2.

The fake records what ``POST /api/v2/alerts`` receives and can answer 503 or
never answer, which is all the client can see of a real one; the live proofs
(routing, delivery to Slack and email, resolution) are in
tests/e2e/test_alerting_e2e.py.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from otel_tdd import _runtime
from otel_tdd.alerting import SEVERITIES, AlertmanagerClient, alert
from otel_tdd.stack import process
from otel_tdd.structured_logging import StructuredLogger
from otel_tdd.testing import Capture, capture_telemetry

# alert() must never make the caller wait on the network. It queues and returns; 50 ms
# is generous for that (a loaded 2-core CI machine), and far below one network timeout.
RETURNS_AT_ONCE_S = 0.050


class FakeAlertmanager:
    """``POST /api/v2/alerts`` on a loopback port: records bodies, answers ``status``."""

    def __init__(self) -> None:
        self.posts: list[list[dict[str, Any]]] = []
        self.headers: list[dict[str, str]] = []
        self.status = 200
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/api/v2/alerts":
                    fake.posts.append(json.loads(body))
                    fake.headers.append(dict(self.headers.items()))
                self.send_response(fake.status if self.path == "/api/v2/alerts" else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def alerts(self) -> list[dict[str, Any]]:
        return [item for post in self.posts for item in post]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def fake_am() -> Iterator[FakeAlertmanager]:
    fake = FakeAlertmanager()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def alerting(fake_am: FakeAlertmanager) -> Iterator[Capture]:
    """otel-tdd captured in memory, alerting configured at the fake Alertmanager."""
    with capture_telemetry(service_name="checkout", alertmanager_url=fake_am.url) as capture:
        yield capture


def flush() -> None:
    """Wait until the background sender has posted (or failed) everything queued."""
    client = _runtime.current().alertmanager
    assert isinstance(client, AlertmanagerClient), "no Alertmanager client was created"
    assert client.flush(10), "the alert queue did not drain in 10 s"


def timed(call: Any) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


# --- what is posted -----------------------------------------------------------------------


def test_alert_posts_one_api_v2_alert_with_routing_labels_and_string_annotations(
    alerting: Capture, fake_am: FakeAlertmanager
) -> None:
    queued = alert(
        "database_connection_failure",
        {"database": "framework.db", "retry_attempts": 5, "hosts": ["a", "b"]},
        severity="critical",
        alert_channels=["slack", "email"],
    )
    assert queued is True
    flush()
    (post,) = fake_am.posts
    assert fake_am.headers[0]["Content-Type"] == "application/json"
    (sent,) = post
    assert set(sent) == {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
    # The labels the routing tree matches on (compose/alertmanager/alertmanager.yml).
    assert sent["labels"] == {
        "alertname": "database_connection_failure",
        "severity": "critical",
        "service": "checkout",
        "channel": "slack,email",
        "source": "code",
    }
    annotations = sent["annotations"]
    assert annotations["summary"] == "database connection failure"
    assert json.loads(annotations["description"]) == {
        "database": "framework.db",
        "retry_attempts": 5,
        "hosts": ["a", "b"],
    }
    assert annotations["database"] == "framework.db"
    assert annotations["retry_attempts"] == "5"
    assert annotations["hosts"] == '["a", "b"]'
    # Alertmanager rejects non-string label or annotation values.
    assert all(isinstance(v, str) for v in {**sent["labels"], **annotations}.values())
    starts = datetime.fromisoformat(sent["startsAt"].replace("Z", "+00:00"))
    ends = datetime.fromisoformat(sent["endsAt"].replace("Z", "+00:00"))
    assert sent["startsAt"].endswith("Z") and sent["endsAt"].endswith("Z")
    assert 0 < (ends - starts).total_seconds() <= 3600  # an event: it resolves by itself


def test_summary_and_description_from_data_are_used_as_given(
    alerting: Capture, fake_am: FakeAlertmanager
) -> None:
    alert("disk_full", {"summary": "Disk /var is full", "description": "0 bytes left"})
    flush()
    (sent,) = fake_am.alerts()
    assert sent["annotations"] == {"summary": "Disk /var is full", "description": "0 bytes left"}
    assert "channel" not in sent["labels"]  # no channels: routed by severity
    assert sent["labels"]["severity"] == "warning"  # the default


@pytest.mark.parametrize(
    "data", [{"n": 10**5000}, {"summary": 10**5000}, {"description": 10**5000}]
)
def test_an_int_too_long_for_json_still_posts_the_alert(
    alerting: Capture, fake_am: FakeAlertmanager, data: dict[str, Any]
) -> None:
    assert alert("huge", data) is True
    flush()
    (post,) = fake_am.posts
    (sent,) = post
    assert all(isinstance(v, str) for v in sent["annotations"].values())
    assert "int of 16610 bits" in json.dumps(sent["annotations"])


def test_secrets_in_the_data_are_redacted_in_the_alert_and_its_log_record(
    alerting: Capture, fake_am: FakeAlertmanager
) -> None:
    data = {
        "database": "framework.db",
        "password": "hunter2-not-for-slack",
        "api_key": "sk-live-0123456789",
        "connection": {"dsn_password": "nested-secret-42", "host": "db1"},
    }
    alert("database_connection_failure", data, severity="critical", alert_channels=["slack"])
    flush()
    body = json.dumps(fake_am.posts)
    for secret in ("hunter2-not-for-slack", "sk-live-0123456789", "nested-secret-42"):
        assert secret not in body
        assert secret not in "\n".join(alerting.lines())
    (sent,) = fake_am.alerts()
    assert sent["annotations"]["password"] == "[REDACTED]"
    assert sent["annotations"]["api_key"] == "[REDACTED]"
    assert json.loads(sent["annotations"]["connection"]) == {
        "dsn_password": "[REDACTED]",
        "host": "db1",
    }
    assert data["password"] == "hunter2-not-for-slack"  # the caller's dict is untouched
    (record,) = [r for r in alerting.records() if r.get("alert")]
    assert record["data"]["password"] == "[REDACTED]"
    assert record["level"] == "CRITICAL"
    assert record["alert"] == {
        "name": "database_connection_failure",
        "severity": "critical",
        "channels": ["slack"],
    }


def test_repeats_of_the_same_alert_are_posted_once(
    alerting: Capture, fake_am: FakeAlertmanager
) -> None:
    results = [alert("queue_backlog", {"depth": depth}) for depth in range(5)]
    # Same labels = same alert for Alertmanager: only the first is posted.
    assert results == [True, False, False, False, False]
    assert alert("queue_backlog", {"depth": 9}, severity="critical") is True  # other labels
    assert alert("other_alert") is True
    flush()
    assert [(a["labels"]["alertname"], a["labels"]["severity"]) for a in fake_am.alerts()] == [
        ("queue_backlog", "warning"),
        ("queue_backlog", "critical"),
        ("other_alert", "warning"),
    ]
    assert alerting.metric_value("tdd_alerts_sent_total") == 3
    # Every call is still a log record: deduplication is about Alertmanager's traffic.
    assert len([r for r in alerting.records() if r.get("alert")]) == 7


def test_a_repeat_after_the_dedup_window_is_posted_again(fake_am: FakeAlertmanager) -> None:
    client = AlertmanagerClient(fake_am.url, dedup_window_s=0.2)
    try:
        payload = {"labels": {"alertname": "x"}, "annotations": {}}
        assert client.submit(dict(payload)) is True
        assert client.submit(dict(payload)) is False
        time.sleep(0.3)
        assert client.submit(dict(payload)) is True
        assert client.flush(5)
        assert len(fake_am.posts) == 2
    finally:
        client.close()


# --- severity ---------------------------------------------------------------------------------


def test_the_seeds_logger_alert_takes_severity_from_the_data(
    alerting: Capture, fake_am: FakeAlertmanager
) -> None:
    logger = StructuredLogger("tdd_application")
    # --- the seed's "Alert Integration" ---
    logger.alert(
        "database_connection_failure",
        {
            "severity": "critical",
            "database": "framework.db",
            "retry_attempts": 5,
            "last_success": "2025-08-17T09:45:00Z",
        },
        alert_channels=["slack", "email"],
    )
    # ---
    flush()
    (sent,) = fake_am.alerts()
    assert sent["labels"]["severity"] == "critical"
    assert sent["labels"]["channel"] == "slack,email"
    assert "severity" not in sent["annotations"]  # a routing label, not a description
    assert "severity" not in json.loads(sent["annotations"]["description"])
    (record,) = [r for r in alerting.records() if r.get("alert")]
    assert record["logger"] == "tdd_application"
    assert record["level"] == "CRITICAL"


def test_an_explicit_severity_wins_over_the_datas(
    alerting: Capture, fake_am: FakeAlertmanager
) -> None:
    alert("a", {"severity": "critical"}, severity="info")
    alert("b", {"severity": "info"}, severity=None)
    alert("c", {}, severity=None)  # neither: warning
    flush()
    assert {a["labels"]["alertname"]: a["labels"]["severity"] for a in fake_am.alerts()} == {
        "a": "info",
        "b": "info",
        "c": "warning",
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"severity": "page"},
            "severity='page' is invalid: expected one of info, warning, critical",
        ),
        ({"severity": "CRITICAL"}, "severity='CRITICAL' is invalid"),
        ({"severity": None, "data": {"severity": "fatal"}}, "severity='fatal' is invalid"),
    ],
)
def test_an_unknown_severity_is_an_error_that_names_the_choices(
    alerting: Capture, fake_am: FakeAlertmanager, kwargs: dict[str, Any], message: str
) -> None:
    data = kwargs.pop("data", {})
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        alert("x", data, **kwargs)
    assert SEVERITIES == ("info", "warning", "critical")
    assert not [r for r in alerting.records() if r.get("alert")]  # nothing half-done


@pytest.mark.parametrize("name", ["", None, 42])
def test_an_alert_needs_a_name(alerting: Capture, name: Any) -> None:
    with pytest.raises(ValueError, match="alert name"):
        alert(name, {})


# --- Alertmanager down, slow, or not configured -------------------------------------------------


def test_alertmanager_down_returns_at_once_counts_each_failure_and_logs_once() -> None:
    (port,) = process.free_ports(1)  # nothing listens there: connection refused
    with capture_telemetry(alertmanager_url=f"http://127.0.0.1:{port}") as capture:
        durations = [timed(lambda i=i: alert(f"outage_{i}", {"i": i})) for i in range(10)]
        assert max(durations) < RETURNS_AT_ONCE_S, durations
        flush()
        assert capture.metric_value("tdd_alerts_failed_total", {"reason": "unreachable"}) == 10
        assert capture.metric_value("tdd_alerts_sent_total") == 0
        warnings = [r for r in capture.records() if "is unreachable" in r["message"]]
        assert len(warnings) == 1, [r["message"] for r in warnings]
        assert warnings[0]["level"] == "WARNING"
        assert "tdd_alerts_failed_total" in warnings[0]["message"]
        # The app goes on: the alert is still a log record each time.
        assert len([r for r in capture.records() if r.get("alert")]) == 10


def test_an_alertmanager_that_never_answers_does_not_hold_the_caller() -> None:
    # Accepts connections (kernel backlog) but never reads: the post hangs until its timeout.
    blackhole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(16)
    try:
        url = f"http://127.0.0.1:{blackhole.getsockname()[1]}"
        with capture_telemetry(alertmanager_url=url):
            first = timed(lambda: alert("stuck_1", {}))
            second = timed(lambda: alert("stuck_2", {}))  # queued behind the hanging post
            assert max(first, second) < RETURNS_AT_ONCE_S, (first, second)
    finally:
        blackhole.close()


def test_each_outage_is_logged_once_and_the_recovery_once(
    alerting: Capture, fake_am: FakeAlertmanager
) -> None:
    fake_am.status = 503
    for i in range(3):
        alert(f"first_outage_{i}")
    flush()
    fake_am.status = 200
    alert("recovered")
    flush()
    fake_am.status = 503
    for i in range(2):
        alert(f"second_outage_{i}")
    flush()
    messages = [r["message"] for r in alerting.records() if r["logger"] == "otel_tdd.alerting"]
    # A 503 is an answer, not an outage of the network: its own reason, logged per streak.
    failing = [m for m in messages if "did not take an alert (reason=server_error" in m]
    answers = [m for m in messages if "answers again" in m and "did not take" not in m]
    assert (len(failing), len(answers)) == (2, 1), messages
    assert alerting.metric_value("tdd_alerts_failed_total", {"reason": "server_error"}) == 5
    assert alerting.metric_value("tdd_alerts_sent_total") == 1


def test_a_repeat_of_an_alert_that_failed_is_posted_again(
    alerting: Capture, fake_am: FakeAlertmanager
) -> None:
    fake_am.status = 503
    assert alert("database_down", {"attempt": 1}) is True
    flush()
    fake_am.status = 200
    # Not a duplicate of something Alertmanager has: queued again, and delivered.
    assert alert("database_down", {"attempt": 2}) is True
    flush()
    assert [a["annotations"]["attempt"] for a in fake_am.alerts()] == ["1", "2"]
    assert alert("database_down", {"attempt": 3}) is False  # delivered once: deduplicated


def test_a_full_queue_drops_and_counts_instead_of_blocking() -> None:
    blackhole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(16)
    try:
        with capture_telemetry() as capture:
            url = f"http://127.0.0.1:{blackhole.getsockname()[1]}"
            client = AlertmanagerClient(url, timeout_s=0.5, queue_size=1)
            try:
                outcomes = []
                for i in range(5):
                    started = time.perf_counter()
                    outcomes.append(client.submit({"labels": {"alertname": f"a{i}"}}))
                    assert time.perf_counter() - started < RETURNS_AT_ONCE_S
                # One in flight (hanging), one queued, the rest refused and counted.
                assert outcomes.count(False) >= 3, outcomes
                dropped = capture.metric_value("tdd_alerts_failed_total", {"reason": "queue_full"})
                assert dropped == outcomes.count(False)
            finally:
                client.close(timeout_s=3)
    finally:
        blackhole.close()


def test_without_an_alertmanager_url_an_alert_is_still_a_log_record_and_a_span_event(
    otel_capture: Capture,
) -> None:
    tracer = _runtime.current().tracer
    with tracer.start_as_current_span("checkout"):
        assert alert("payment_declined", {"order": 7}, severity="info") is False
    (record,) = [r for r in otel_capture.records() if r.get("alert")]
    assert record["level"] == "WARNING"
    assert record["data"] == {"order": 7}
    (span,) = otel_capture.spans()
    (event,) = span.events
    assert event.name == "alert.payment_declined"
    assert dict(event.attributes or {}) == {"severity": "info", "channels": ()}
    assert _runtime.current().alertmanager is None


# --- performance_context(..., alert_threshold_ms=...) --------------------------------------------


def test_a_slow_performance_context_alerts_through_alertmanager_when_configured(
    alerting: Capture, fake_am: FakeAlertmanager
) -> None:
    logger = StructuredLogger("tdd_application")
    with logger.performance_context("api_response", alert_threshold_ms=1):
        time.sleep(0.01)
    with logger.performance_context("api_response", alert_threshold_ms=10_000):
        pass
    flush()
    (sent,) = fake_am.alerts()
    assert sent["labels"]["alertname"] == "PerformanceThresholdExceeded"
    assert sent["labels"]["severity"] == "warning"
    assert sent["labels"]["service"] == "checkout"
    assert sent["annotations"]["operation"] == "api_response"
    assert sent["annotations"]["summary"] == "api_response slower than 1 ms"
    assert float(sent["annotations"]["duration_ms"]) >= 10


# --- names Alertmanager accepts, URLs it can be reached at ------------------------------------


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("user-id", "user_id"),
        ("my key", "my_key"),
        ("1abc", "_1abc"),
        ("clé", "cle"),
        ("http.status", "http_status"),
        ("", "_"),
        ("ok_name", "ok_name"),
    ],
)
def test_an_annotation_name_is_a_valid_label_name(key: str, name: str) -> None:
    from otel_tdd.alerting import annotation_name

    assert annotation_name(key) == name


def test_sanitised_annotation_names_are_unique_and_independent_of_key_order() -> None:
    from otel_tdd.alerting import annotation_names

    one = annotation_names({"user-id": 1, "user_id": 2, "user.id": 3, "summary": 4})
    two = annotation_names({"user.id": 3, "summary": 4, "user_id": 2, "user-id": 1})
    assert one == two
    assert one["user_id"] == "user_id"  # a valid key keeps its name
    assert sorted(one.values()) == sorted({*one.values()})  # no two keys share a name
    assert one["summary"] == "summary_2"  # never overwrites the summary annotation


def test_hostile_data_keys_become_valid_annotation_names_in_the_payload(
    alerting: Capture, fake_am: FakeAlertmanager
) -> None:
    import re

    alert("hostile", {"user-id": 1, "my key": 2, "1abc": 3, "clé": 4, "http.status": 5, "": 6})
    flush()
    (sent,) = fake_am.alerts()
    assert all(re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", k) for k in sent["annotations"])


def test_an_alertmanager_url_with_credentials_is_refused_without_printing_the_password() -> None:
    from otel_tdd.config import ConfigError, load_settings

    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"OTEL_TDD_ALERTMANAGER_URL": "http://ops:hunter2@127.0.0.1:9093"})
    assert "OTEL_TDD_ALERTMANAGER_URL" in str(caught.value)
    assert "credentials" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ValueError) as direct:
        AlertmanagerClient("http://ops:hunter2@127.0.0.1:9093")
    assert "hunter2" not in str(direct.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://ops:hun/ter2@127.0.0.1:9093",
        "http://ops:hun#ter2@127.0.0.1:9093",
        "http://ops:hun?ter2@127.0.0.1:9093",
        "http://ops:h@nter2@127.0.0.1:9093",
    ],
)
def test_a_password_with_punctuation_is_refused_and_never_printed(url: str) -> None:
    """urlsplit ends the netloc at the first / ? #: the password read as host and path."""
    from otel_tdd.config import ConfigError, load_settings, without_password

    assert without_password(url) == "http://ops:***@127.0.0.1:9093"
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"OTEL_TDD_ALERTMANAGER_URL": url})
    assert "ter2" not in str(caught.value)  # refused as invalid or as credentials
    with pytest.raises(ValueError, match="credentials") as direct:
        AlertmanagerClient(url)
    assert "ter2" not in str(direct.value)


def test_a_sender_hit_by_an_unexpected_error_goes_on(
    alerting: Capture, fake_am: FakeAlertmanager, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _runtime.current().alertmanager
    alert("first")
    flush()
    client = _runtime.current().alertmanager
    real_post = client._post
    calls = []

    def broken(payload: dict[str, Any]) -> None:
        calls.append(payload)
        if len(calls) == 1:
            raise RuntimeError("boom")
        real_post(payload)

    monkeypatch.setattr(client, "_post", broken)
    alert("second")
    alert("third")
    flush()
    assert alerting.metric_value("tdd_alerts_failed_total", {"reason": "error"}) == 1
    assert [a["labels"]["alertname"] for a in fake_am.alerts()] == ["first", "third"]


def test_channels_are_sent_as_whole_stripped_items_for_exact_routing() -> None:
    from otel_tdd.alerting import build_payload

    payload = build_payload("x", {}, "critical", [" slack", "email,slack", "", "noslackhere"], "s")
    assert payload["labels"]["channel"] == "slack,email,noslackhere"
