"""Alerts, really delivered: app → Collector → Prometheus rules → Alertmanager → receivers.

Real processes throughout (our Collector, Prometheus, Alertmanager, the example app);
the only stand-ins are the paid outside services, as local sinks (tests/e2e/sinks.py):
a webhook endpoint, a Slack incoming webhook and an SMTP relay. Alertmanager reaches
them through the local stack's receiver overrides, with the shipped route tree and
receivers (compose/alertmanager/alertmanager.yml). What differs from production is
time only, so that the test takes minutes, not hours:

* the rules are the shipped files with the two latency alerts' ``for:`` shortened
  (HighResponseTime 2m → 10s, SlowResponseTime 3m → 15s: same order); the recording
  rules and every expression are unchanged (p95 over 5m);
* Alertmanager's root ``group_wait``/``group_interval`` are 2s/5s (10s/1m shipped).

The scenario:

1. ``alert(...)`` from code, with channels slack and email, reaches the Slack sink
   (``#alerts``) and the SMTP sink, redacted, and nothing else.
2. The example app is made slow (``POST /admin/latency?ms=1500``): HighResponseTime
   fires in Prometheus, Alertmanager pages the ``critical`` receiver (Slack
   ``#alerts-critical`` and email) and not the webhook; SlowResponseTime is
   inhibited by it; the app's ``performance_context(alert_threshold_ms=1000)``
   alert from code reaches the webhook, posted once however many requests were slow.
3. The slowness stops, fast requests bring p95 down, and the resolved
   notification reaches the same receivers.

A missing binary FAILS (the stack fixture), never skips.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from example_app import ServedApp, app_env
from run_helpers import REPO, clean_env
from sinks import Mail, Sinks, running_sinks, slack_titles

if TYPE_CHECKING:
    from conftest import StackUnderTest

pytestmark = pytest.mark.e2e

RULES = REPO / "compose" / "prometheus" / "rules"
# Production `for:` windows shortened for a test that takes minutes, in the same order.
SHORT_FOR = {"HighResponseTime": "10s", "SlowResponseTime": "15s"}
# Alertmanager timings for the test (shipped: 10s / 1m); routes and receivers untouched.
AM_ROOT_TIMINGS = {"group_wait": "2s", "group_interval": "5s"}
SLOW_MS = 1500
# Bounds: every wait below is bounded, and the whole module takes a few minutes.
FIRE_TIMEOUT_S = 150.0  # scrape 5s + rate + 10s `for` + evaluation 5s, on a busy machine
DELIVERY_TIMEOUT_S = 60.0  # critical route group_wait 5s + notify retries
FAST_BATCH = 200
SECRET = "sk-live-must-never-reach-slack-4242"
DB_PASSWORD = "hunter2-must-never-reach-email"


# --- the stack, aimed at the sinks --------------------------------------------------------


def render_short_rules(directory: Path) -> Path:
    """The shipped rule files, with only the latency alerts' ``for:`` shortened."""
    directory.mkdir(parents=True)
    changed = set()
    for source in sorted(RULES.glob("*.yml")):
        document = yaml.safe_load(source.read_text())
        for group in document["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") in SHORT_FOR:
                    rule["for"] = SHORT_FOR[rule["alert"]]
                    changed.add(rule["alert"])
        (directory / source.name).write_text(yaml.safe_dump(document, sort_keys=False))
    assert changed == set(SHORT_FOR), f"rules not found in {RULES}: {set(SHORT_FOR) - changed}"
    return directory


def am_get(stack: StackUnderTest, path: str) -> Any:
    with urllib.request.urlopen(stack.alertmanager_url + path, timeout=10) as response:
        return json.loads(response.read())


def shorten_alertmanager_timings(stack: StackUnderTest) -> None:
    """Rewrite the rendered alertmanager.yml's root timings and reload it (POST /-/reload)."""
    path = stack.config_path("alertmanager")
    config = yaml.safe_load(path.read_text())
    shipped_routes = route_tree(config)
    config["route"].update(AM_ROOT_TIMINGS)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    request = urllib.request.Request(stack.alertmanager_url + "/-/reload", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    loaded = yaml.safe_load(am_get(stack, "/api/v2/status")["config"]["original"])
    assert loaded["route"]["group_interval"] == AM_ROOT_TIMINGS["group_interval"], loaded
    assert route_tree(loaded) == shipped_routes  # the same tree, as Alertmanager reads it


def route_tree(config: dict[str, Any]) -> list[tuple[str, list[str], bool]]:
    """(receiver, matchers, continue) per route: the routing, without the timings."""
    routes = [config["route"], *config["route"].get("routes", [])]
    return [(r["receiver"], sorted(r.get("matchers", [])), bool(r.get("continue"))) for r in routes]


@pytest.fixture(scope="module")
def sinks() -> Iterator[Sinks]:
    with running_sinks() as running:
        yield running


@pytest.fixture(scope="module")
def alert_stack(tmp_path_factory: pytest.TempPathFactory, sinks: Sinks) -> Iterator[StackUnderTest]:
    """Collector, Prometheus (short-`for` rules) and Alertmanager (receivers on the sinks)."""
    from conftest import StackUnderTest, _up_or_fail

    home = tmp_path_factory.mktemp("alerting")
    stack = StackUnderTest(
        home / "stack",
        free_ports=True,
        receivers=sinks.receivers(),
        rules_dir=render_short_rules(home / "rules"),
    )
    _up_or_fail(stack)
    try:
        shorten_alertmanager_timings(stack)
        yield stack
    finally:
        stack.down()


def wait(stack: StackUnderTest, sinks: Sinks, predicate: Any, timeout_s: float, what: str) -> Any:
    """``stack.wait_for`` whose failure also shows what every sink received."""

    def probe() -> Any:
        return predicate()

    try:
        return stack.wait_for(probe, timeout_s, what)
    except pytest.fail.Exception as failure:
        pytest.fail(f"{failure}\n{sinks.summary()}", pytrace=False)


def mails_about(sinks: Sinks, subject: str) -> list[Mail]:
    return [m for m in sinks.smtp.mails() if m.subject == subject]


def slack_messages(sinks: Sinks, title: str) -> list[dict[str, Any]]:
    return [p for p in sinks.slack.payloads() if title in slack_titles(p)]


def webhook_alerts(sinks: Sinks, alertname: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(payload, alert) for every alert named ``alertname`` the webhook sink received."""
    return [
        (payload, item)
        for payload in sinks.webhook.payloads()
        for item in payload.get("alerts", [])
        if item["labels"].get("alertname") == alertname
    ]


# --- (2) alert() from code ---------------------------------------------------------------------

ALERT_FROM_CODE = f"""
import otel_tdd
from otel_tdd.alerting import alert
from otel_tdd.structured_logging import StructuredLogger

otel_tdd.configure()
queued = alert(
    "PaymentGatewayDown",
    {{"summary": "Payment gateway unreachable", "gateway": "stripe", "api_key": "{SECRET}"}},
    severity="critical",
    alert_channels=["slack", "email"],
)
# The seed's form: severity in the data, the logger's alert().
StructuredLogger("tdd_application").alert("database_connection_failure", {{
    "severity": "critical",
    "database": "framework.db",
    "retry_attempts": 5,
    "last_success": "2025-08-17T09:45:00Z",
    "password": "{DB_PASSWORD}",
}}, alert_channels=["slack", "email"])
otel_tdd.shutdown()  # flushes the alert queue
print("queued" if queued else "not queued")
"""


def test_alert_from_code_reaches_slack_and_email_redacted_and_nothing_else(
    alert_stack: StackUnderTest, sinks: Sinks
) -> None:
    service = f"alerting-code-{uuid.uuid4().hex[:6]}"
    env = clean_env(
        {
            "OTEL_SERVICE_NAME": service,
            "OTEL_TDD_ALERTMANAGER_URL": alert_stack.alertmanager_url,
            "OTEL_TDD_LOG_STREAM": "none",
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", ALERT_FROM_CODE],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "queued" in done.stdout, done.stdout + done.stderr
    alertnames = ("PaymentGatewayDown", "database_connection_failure")
    titles = [f"[FIRING] {name} {service}" for name in alertnames]

    def delivered() -> bool:
        return all(slack_messages(sinks, t) and mails_about(sinks, t) for t in titles)

    wait(alert_stack, sinks, delivered, DELIVERY_TIMEOUT_S, f"Slack and email for {titles}")

    for title in titles:
        (message,) = slack_messages(sinks, title)
        # The `slack` receiver (channel chosen in code), not the critical one.
        assert message["channel"] == "#alerts", message
        (attachment,) = message["attachments"]
        assert attachment["color"] == "danger"
        (mail,) = mails_about(sinks, title)
        assert mail.rcpt_tos == ("oncall@example.com",)
        assert mail.mail_from == "alertmanager@example.com"
    gateway = slack_messages(sinks, titles[0])[0]["attachments"][0]["text"]
    assert "Payment gateway unreachable" in gateway
    database = slack_messages(sinks, titles[1])[0]["attachments"][0]["text"]
    assert "framework.db" in database and "retry_attempts" in database
    # Redacted before it left the process: in Slack's text and in the mail alike.
    for secret in (SECRET, DB_PASSWORD):
        assert secret not in json.dumps(sinks.slack.payloads())
        assert all(secret not in m.text for m in sinks.smtp.mails())
    assert "[REDACTED]" in gateway and "[REDACTED]" in database
    for title in titles:
        assert "[REDACTED]" in mails_about(sinks, title)[0].text
        # The explicit channels win over severity routing: no page on the critical receiver.
        critical = title.replace("[FIRING]", "[CRITICAL FIRING]")
        assert not slack_messages(sinks, critical) and not mails_about(sinks, critical)
    for name in alertnames:
        assert not webhook_alerts(sinks, name), sinks.summary()


# --- (1) and (3): a slow endpoint pages, and the all-clear follows ------------------------------


@dataclass
class Incident:
    stack: StackUnderTest
    sinks: Sinks
    app: ServedApp
    slow_requests: int
    fired_after_s: float

    @property
    def service(self) -> str:
        return self.app.service


def firing(stack: StackUnderTest, alertname: str, service: str) -> list[dict[str, Any]]:
    return stack.query(f'ALERTS{{alertname="{alertname}",alertstate="firing",service="{service}"}}')


def am_alerts(stack: StackUnderTest, alertname: str, service: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode(
        [("filter", f'alertname="{alertname}"'), ("filter", f'service="{service}"')]
    )
    alerts: list[dict[str, Any]] = am_get(stack, f"/api/v2/alerts?{query}")
    return alerts


@pytest.fixture(scope="module")
def incident(
    alert_stack: StackUnderTest, sinks: Sinks, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Incident]:
    """The example app, made slow until HighResponseTime fires in Prometheus."""
    service = f"alerting-app-{uuid.uuid4().hex[:6]}"
    app = ServedApp(tmp_path_factory.mktemp("app"), service, app_env(alert_stack))
    try:
        assert app.set_latency(SLOW_MS) == 200
        stop = threading.Event()
        sent = [0]

        def slow_load() -> None:
            while not stop.is_set():
                status, _ = app.post("/epics", {"name": "slow", "user_id": "u1"})
                assert status == 200
                sent[0] += 1

        started = time.monotonic()
        loader = threading.Thread(target=slow_load, name="slow-load", daemon=True)
        loader.start()
        try:
            wait(
                alert_stack,
                sinks,
                lambda: firing(alert_stack, "HighResponseTime", service),
                FIRE_TIMEOUT_S,
                f"HighResponseTime firing in Prometheus for {service}",
            )
        finally:
            stop.set()
            loader.join(SLOW_MS / 1000 + 15)
        fired_after = time.monotonic() - started
        print(f"\nHighResponseTime firing in Prometheus {fired_after:.0f}s after the slowdown")
        yield Incident(alert_stack, sinks, app, sent[0], fired_after)
    finally:
        app.stop()


def test_slow_endpoint_pages_the_critical_receivers_and_not_the_webhook(
    incident: Incident,
) -> None:
    stack, sinks, service = incident.stack, incident.sinks, incident.service
    title = f"[CRITICAL FIRING] HighResponseTime {service}"
    wait(
        stack,
        sinks,
        lambda: slack_messages(sinks, title) and mails_about(sinks, title),
        DELIVERY_TIMEOUT_S,
        f"{title!r} on Slack and email",
    )
    (message,) = slack_messages(sinks, title)
    assert message["channel"] == "#alerts-critical"
    (attachment,) = message["attachments"]
    assert attachment["color"] == "danger"
    assert f"{service}: p95 response time above 1s" in attachment["text"]
    assert "docs/runbooks/HighResponseTime.md" in attachment["text"]
    (mail,) = mails_about(sinks, title)
    assert mail.rcpt_tos == ("oncall@example.com",)
    assert "HighResponseTime" in mail.text and "runbook_url" in mail.text
    # The critical route does not continue: the default webhook never hears of it.
    assert not webhook_alerts(sinks, "HighResponseTime"), sinks.summary()

    (labels,) = [a["metric"] for a in firing(stack, "HighResponseTime", service)]
    assert labels["severity"] == "critical" and labels["symptom"] == "latency"
    assert labels["job"] == service


def test_slow_response_warning_is_inhibited_by_the_critical_alert(incident: Incident) -> None:
    stack, sinks, service = incident.stack, incident.sinks, incident.service

    def inhibited() -> list[dict[str, Any]]:
        warnings = am_alerts(stack, "SlowResponseTime", service)
        return [a for a in warnings if a["status"]["inhibitedBy"]]

    (warning,) = wait(stack, sinks, inhibited, 60, "SlowResponseTime in Alertmanager, inhibited")
    (critical,) = am_alerts(stack, "HighResponseTime", service)
    assert warning["status"]["state"] == "suppressed"
    assert warning["status"]["inhibitedBy"] == [critical["fingerprint"]]
    assert warning["receivers"] == [{"name": "webhook"}]  # where it would have gone
    # Past the webhook route's group_wait + group_interval, while the critical alert
    # still fires, nothing was sent for the warning.
    time.sleep(8)
    assert firing(stack, "HighResponseTime", service)
    assert not webhook_alerts(sinks, "SlowResponseTime"), sinks.summary()


def test_performance_context_alert_from_the_app_reaches_the_webhook_once(
    incident: Incident,
) -> None:
    stack, sinks, service = incident.stack, incident.sinks, incident.service

    def received() -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return [
            (payload, item)
            for payload, item in webhook_alerts(sinks, "PerformanceThresholdExceeded")
            if item["labels"].get("service") == service
        ]

    deliveries = wait(stack, sinks, received, DELIVERY_TIMEOUT_S, "the app's alert on the webhook")
    payload, item = deliveries[0]
    assert payload["version"] == "4" and payload["receiver"] == "webhook"
    assert payload["status"] == "firing"
    assert item["labels"]["severity"] == "warning" and item["labels"]["source"] == "code"
    assert item["annotations"]["operation"] == "api_response"
    assert float(item["annotations"]["duration_ms"]) > 1000
    token = (stack.state_dir / "alertmanager" / "secrets" / "webhook_token").read_text()
    (request,) = [r for r in sinks.webhook.requests() if r.json == payload]
    assert request.headers["Authorization"] == f"Bearer {token.strip()}"

    # Every slow request exceeded the threshold; the app posted the alert once.
    job = f'job="{service}"'
    stack.wait_for(
        lambda: (
            (stack.query_value(f"sum(tdd_performance_threshold_exceeded_total{{{job}}})") or 0)
            >= incident.slow_requests
        ),
        30,
        "tdd_performance_threshold_exceeded_total in Prometheus",
    )
    assert incident.slow_requests >= 3
    assert stack.query_value(f"sum(tdd_alerts_sent_total{{{job}}})") == 1
    assert stack.query_value(f"sum(tdd_alerts_failed_total{{{job}}})") == 0


def test_when_the_slowness_stops_the_resolved_notification_arrives(incident: Incident) -> None:
    stack, sinks, app, service = incident.stack, incident.sinks, incident.app, incident.service
    assert app.set_latency(0) == 200
    p95 = f'job:tdd_response_time_seconds:p95_5m{{job="{service}"}}'
    sent = 0

    def fast_batch() -> None:
        nonlocal sent
        with ThreadPoolExecutor(4) as pool:
            statuses = list(
                pool.map(lambda _: app.post("/epics", {"name": "fast"})[0], range(FAST_BATCH))
            )
        assert set(statuses) == {200}
        sent += FAST_BATCH

    started = time.monotonic()
    # p95 over 5 minutes falls below 1s once slow requests are under 5% of the window's
    # traffic: send 30 fast ones per slow one (3%), then let Prometheus catch up.
    while sent < 30 * incident.slow_requests:
        fast_batch()
    last: list[float | None] = [None]

    def p95_low() -> bool:
        last[0] = stack.query_value(p95)
        return last[0] is not None and last[0] < 0.5

    wait(stack, sinks, p95_low, 60, f"{p95} < 0.5 after {sent} fast requests")
    print(f"\n{sent} fast requests after {incident.slow_requests} slow ones: p95 {last[0]:.3f}s")

    title = f"[CRITICAL RESOLVED] HighResponseTime {service}"
    wait(
        stack,
        sinks,
        lambda: slack_messages(sinks, title) and mails_about(sinks, title),
        DELIVERY_TIMEOUT_S,
        f"{title!r} on Slack and email",
    )
    assert not firing(stack, "HighResponseTime", service)
    (message,) = slack_messages(sinks, title)
    assert message["channel"] == "#alerts-critical"
    assert message["attachments"][0]["color"] == "good"
    (mail,) = mails_about(sinks, title)
    assert mail.rcpt_tos == ("oncall@example.com",)
    print(f"resolved notification {time.monotonic() - started:.0f}s after the slowness stopped")
    assert not webhook_alerts(sinks, "HighResponseTime"), sinks.summary()
