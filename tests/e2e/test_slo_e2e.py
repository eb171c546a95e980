"""An SLO's fast-burn page, really fired and delivered, when the maths says it should.

Real processes throughout: a service using otel_tdd's metric catalog sends OTLP to our
Collector; Prometheus loads the rules `otel-tdd slo generate` wrote (through
``otel-tdd stack up``'s ``slo_rules_dir``); Alertmanager, with the shipped route tree,
delivers to the local Slack/SMTP/webhook sinks (tests/e2e/sinks.py).

Time is scaled, nothing else. ``SCALE`` = 1/60: every window of the generated rules
is 60x shorter (1h -> 1m, 5m -> 5s, 6h -> 6m, 1d -> 24m, 3d -> 72m), and so is the
rule evaluation interval (1s); Prometheus scrapes every 1s (5s shipped) so the 5s
window holds samples, and the app exports metrics every 1s. Alertmanager keeps its
shipped timings (the critical route waits group_wait 5s).

The service's history is a burst of ``HISTORY`` good requests (days of healthy
traffic, compressed into an instant), then steady traffic at ``RATE``/s for longer
than the page's long window (so its 1h window holds only steady traffic). Then one
request in ``FAIL_EVERY`` fails: 5 %, a burn rate of 50 for a 99.9 % objective. The
1h window's bad share grows as 5 % x t / 1m; it crosses 14.4 x 0.1 % at

    t = 1m x 14.4 x 0.001 / 0.05 = 17.3 s   (the 5m window is above after 1.4 s)

So the page cannot fire before ~17 s, and arrives within that plus the pipeline's
delays (export 1s, scrape 1s, evaluation 1s, group_wait 5s) and a generous margin.
The long windows of the 6h page and of the tickets still hold the burst of good
history, so their bad share stays far below 6x, 3x and 1x the budget: they must not
fire at all.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from example_app import app_env
from run_helpers import RunningCommand
from sinks import Sinks, running_sinks, slack_titles

from otel_tdd import slo_cli
from otel_tdd.slo import parse_spec

if TYPE_CHECKING:
    from conftest import StackUnderTest

pytestmark = pytest.mark.e2e

SCALE = 1 / 60
OBJECTIVE = 99.9
RATE = 20  # requests per second, steady
FAIL_EVERY = 20  # one request in 20 fails: 5 %
HISTORY = 150_000  # good requests of compressed history (see the module docstring)
LONG_WINDOW_S = 3600 * SCALE  # the page's 1h window, scaled
PAGE_FACTOR = 14.4
PREDICTED_S = LONG_WINDOW_S * PAGE_FACTOR * (1 - OBJECTIVE / 100) * FAIL_EVERY  # 17.28 s
EARLY_TOLERANCE_S = 2.0  # rate() extrapolation and one scrape of jitter
# Export 1s + scrape 1s + evaluation 1s + group_wait 5s = 8s; the rest is a busy machine.
LATE_MARGIN_S = 45.0
SLOW_ALERTS = "SLOBurnRatePage6h|SLOBurnRateTicket1d|SLOBurnRateTicket3d"

SERVICE_SCRIPT = """
import pathlib, sys, time
import otel_tdd
from otel_tdd.metrics import catalog

control = pathlib.Path(sys.argv[1])
rate = int(sys.argv[2])
otel_tdd.configure()
attributes = {"endpoint": "/work"}  # one series: no new series appears when failing starts
catalog.response_time.record(0.01, attributes)
history_done, fail_every, n = False, 0, 0
next_tick = time.monotonic()
while not (control / "stop").exists():
    if not history_done and (control / "history").exists():
        for _ in range(int((control / "history").read_text())):
            catalog.response_time.record(0.01, attributes)
        history_done = True
    if not fail_every and (control / "fail").exists():
        fail_every = int((control / "fail").read_text())
    n += 1
    catalog.response_time.record(0.01, attributes)
    if fail_every and n % fail_every == 0:
        catalog.errors.add(1, {"type": "Injected"})
    next_tick += 1 / rate
    time.sleep(max(0.0, next_tick - time.monotonic()))
otel_tdd.shutdown()
"""


def fast_scrapes(stack: StackUnderTest) -> None:
    """Scrape every 1s (the 5s window needs samples): rewrite, reload, read back."""
    path = stack.config_path("prometheus")
    config = yaml.safe_load(path.read_text())
    config["global"].update({"scrape_interval": "1s", "scrape_timeout": "1s"})
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    request = urllib.request.Request(stack.prometheus_url + "/-/reload", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    with urllib.request.urlopen(stack.prometheus_url + "/api/v1/status/config") as response:
        loaded = yaml.safe_load(json.loads(response.read())["data"]["yaml"])
    assert loaded["global"]["scrape_interval"] == "1s", loaded["global"]


def prometheus_alerts(stack: StackUnderTest, service: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(stack.prometheus_url + "/api/v1/alerts", timeout=10) as response:
        alerts: list[dict[str, Any]] = json.loads(response.read())["data"]["alerts"]
    return [a for a in alerts if a["labels"].get("service") == service]


def active_at(stamp: str) -> float:
    """Prometheus' RFC 3339 ``activeAt`` (nanoseconds) as a Unix time."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    parsed = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return parsed.timestamp() + float(f"0.{fraction or 0}")


@pytest.fixture(scope="module")
def service() -> str:
    return f"slo-e2e-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def sinks() -> Iterator[Sinks]:
    with running_sinks() as running:
        yield running


@pytest.fixture(scope="module")
def slo_stack(
    tmp_path_factory: pytest.TempPathFactory, sinks: Sinks, service: str
) -> Iterator[StackUnderTest]:
    """The stack with the service's generated, scaled SLO rules loaded by `stack up`."""
    from conftest import StackUnderTest, _up_or_fail

    home = tmp_path_factory.mktemp("slo")
    spec = parse_spec(
        {
            "service": service,
            "objectives": [{"name": "availability", "objective": OBJECTIVE, "window": "30d"}],
        },
        "test spec",
    )
    slo_cli.generate(spec, home / "slo", scale=SCALE, dashboard=False)
    stack = StackUnderTest(
        home / "stack",
        free_ports=True,
        receivers=sinks.receivers(),
        slo_rules_dir=home / "slo" / "rules",
    )
    _up_or_fail(stack)
    try:
        fast_scrapes(stack)
        yield stack
    finally:
        stack.down()


def healthy_steady_state(stack: StackUnderTest, control: Path, service: str) -> None:
    """The service's compressed history in Prometheus, then steady healthy traffic
    alone in the page's long window: the SLI reads 0 and the whole budget is left,
    though its error counter has no series yet (no `errors.add(0)` anywhere)."""
    job = f'job="{service}"'
    # Prometheus loaded the generated rules (through `stack up`), scaled.
    stack.wait_for(
        lambda: stack.query_value(f'slo:error_budget:ratio{{service="{service}"}}') == 0.001,
        15,
        "the generated SLO rules, evaluated by Prometheus",
    )
    stack.wait_for(
        lambda: stack.query_value(f"tdd_response_time_seconds_count{{{job}}}"),
        60,
        "the service's first request in Prometheus",
    )
    (control / "history").write_text(str(HISTORY))
    stack.wait_for(
        lambda: (stack.query_value(f"tdd_response_time_seconds_count{{{job}}}") or 0) > HISTORY,
        60,
        "the compressed history in Prometheus",
    )
    # Let the history leave the page's long window: it holds steady traffic only.
    time.sleep(LONG_WINDOW_S + 3)
    assert stack.query(f"tdd_errors_total{{{job}}}") == []  # no failure, no error series
    assert stack.query_value(f'slo:sli_error:ratio_rate1h{{service="{service}"}}') == 0
    remaining = f'slo:error_budget_remaining:ratio{{service="{service}"}}'
    assert stack.query_value(remaining) == 1  # a value, not "No data"


def wait_for_the_page(
    stack: StackUnderTest, sinks: Sinks, service: str, failing_since: tuple[float, float]
) -> None:
    """The 1h page arrives at Slack, neither before the maths allows nor much after."""
    title = f"[CRITICAL FIRING] SLOBurnRatePage1h {service}"
    page = sinks.slack.wait_for(
        lambda requests: [r for r in requests if title in slack_titles(r.json)],
        PREDICTED_S + LATE_MARGIN_S,
    )
    assert page, f"no {title!r} within {PREDICTED_S + LATE_MARGIN_S:.0f}s\n{sinks.summary()}"
    arrived_after = page[0].received_at - failing_since[0]
    (firing,) = [
        a
        for a in prometheus_alerts(stack, service)
        if a["labels"]["alertname"] == "SLOBurnRatePage1h"
    ]
    # No `for:`, so activeAt is when Prometheus first saw both windows above 14.4x.
    fired_after = active_at(firing["activeAt"]) - failing_since[1]
    print(
        f"\npredicted {PREDICTED_S:.1f}s; fired in Prometheus after {fired_after:.1f}s, "
        f"at the Slack sink after {arrived_after:.1f}s"
    )
    for seconds in (fired_after, arrived_after):
        assert seconds >= PREDICTED_S - EARLY_TOLERANCE_S, "paged earlier than the maths"
        assert seconds <= PREDICTED_S + LATE_MARGIN_S
    assert firing["state"] == "firing"
    assert firing["labels"]["severity"] == "critical"
    assert firing["labels"]["long_window"] == "1h"
    assert page[0].json["channel"] == "#alerts-critical"
    assert "docs/runbooks/SLOBurnRatePage.md" in page[0].json["attachments"][0]["text"]


def test_a_steady_failure_pages_within_the_predicted_time_and_nothing_slower_fires(
    slo_stack: StackUnderTest, sinks: Sinks, service: str, tmp_path: Path
) -> None:
    stack = slo_stack
    control = tmp_path / "control"
    control.mkdir()
    env = app_env(stack, alerting=False, OTEL_SERVICE_NAME=service, OTEL_TDD_LOG_STREAM="none")
    app = RunningCommand(
        [sys.executable, "-c", SERVICE_SCRIPT, str(control), str(RATE)], env, tmp_path, "service"
    )
    try:
        healthy_steady_state(stack, control, service)
        failing_since = time.monotonic(), time.time()
        (control / "fail").write_text(str(FAIL_EVERY))
        wait_for_the_page(stack, sinks, service, failing_since)

        # Past the critical route's group_wait, nothing slower has fired or is pending:
        # not in Prometheus (at any moment since the failure began) and not at any sink.
        time.sleep(8)
        window = f"{int(time.monotonic() - failing_since[0]) + 5}s"
        slower = stack.query(
            f'count_over_time(ALERTS{{alertname=~"{SLOW_ALERTS}", service="{service}"}}[{window}])'
        )
        assert not slower, slower
        delivered = json.dumps(sinks.webhook.payloads()) + json.dumps(sinks.slack.payloads())
        for name in SLOW_ALERTS.split("|"):
            assert name not in delivered, sinks.summary()
        # The budget is being spent, and the dashboard's series say so.
        remaining = stack.query_value(f'slo:error_budget_remaining:ratio{{service="{service}"}}')
        assert remaining is not None and remaining < 1
    finally:
        (control / "stop").write_text("")
        try:
            app.proc.wait(20)
        except Exception:
            app.proc.kill()
            app.proc.wait(5)
