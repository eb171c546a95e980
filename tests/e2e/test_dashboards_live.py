"""Every Grafana panel query returns data from a live stack after the example workload.

Grafana cannot run here, so this is what proves the dashboards: every query of
every panel (``compose/grafana/build_dashboards.py --list-queries``, with
``$service`` set to the example app's job) runs against the stack's Prometheus
``/api/v1/query`` and must succeed with a non-empty result of real numbers.

The workload is what a user of the example would produce (``examples/tdd_app.py``):
the demo run once, then ``serve`` under a steady user flow plus the events the
quieter panels show: failed logins up to the per-user limit and past it, a bad
request, completing a task that does not exist, one request slower than the 1 s
threshold; the app itself looks epics up through its cache and syncs every 5 s.
node-exporter (Debian's ``prometheus-node-exporter``, as in docker-compose) runs
for the host panels, scraped by compose's own job. Workload, node-exporter and
exclusions are shared with the VictoriaMetrics proof (``dashboard_workload.py``,
fixtures in ``conftest.py``).

Queries that cannot have data from this stack are listed in EXCLUDED with the
reason (docs/dashboards.md repeats them); the test checks they really are empty,
so an exclusion cannot outlive its reason. A missing binary FAILS, never skips.

With ``OTEL_TDD_DASHBOARD_PICTURES=DIR`` (and matplotlib installed) the test then
keeps the load on for ``OTEL_TDD_DASHBOARD_PICTURES_SECONDS`` (150; a slow spell in
the middle) and draws each dashboard from the same queries over the whole run
(``DIR/<uid>.png``): docs/dashboards/*.png were made that way.
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from dashboard_workload import (
    DATA_TIMEOUT_S,
    EXCLUDED,
    Workload,
    dashboard_queries,
    has_data,
    key,
    numbers,
)
from dashboard_workload import answer as answer_from

from otel_tdd.stack import process

if TYPE_CHECKING:
    from conftest import StackUnderTest

pytestmark = pytest.mark.e2e

# Stat panels ("title/refId") that count events the workload makes: they must be above 0.
COUNTING_STATS = (
    "Epics created/A",
    "Tasks completed/A",
    "Focus sessions/A",
    "Failed logins/A",
    "Login failure ratio/A",
    "Rate-limit hits/A",
)


def test_every_exclusion_names_a_real_query() -> None:
    names = {key(q) for q in dashboard_queries("x")}
    assert set(EXCLUDED) <= names, set(EXCLUDED) - names


def answer(stack: StackUnderTest, promql: str) -> dict[str, Any]:
    """Prometheus's whole answer to an instant query, errors included."""
    return answer_from(stack.prometheus_url, promql)


def test_login_limit_and_rejections_happened_as_planned(workload: Workload) -> None:
    """The rarer events really reached the app (the panels below depend on them)."""
    stack, job = workload.stack, f'job="{workload.service}"'
    stack.wait_for(
        lambda: (
            stack.query_value(
                f'sum(tdd_security_events_total{{{job},event_type="rate_limit_exceeded"}})'
            )
            == 7
        ),
        60,
        "7 rate_limit_exceeded events (12 attempts, 5 allowed)",
    )
    assert stack.query_value(f'sum(tdd_auth_attempts_total{{{job},result="failure"}})') == 5
    # 7 answers 429 + 1 bad request = 8 rejections, 5 logged a minute: 3 suppressed.
    assert stack.query_value(f"sum(tdd_log_records_suppressed_total{{{job}}})") == 3


def test_every_dashboard_query_is_valid_and_returns_data(workload: Workload) -> None:
    stack = workload.stack
    queries = {key(q): q for q in dashboard_queries(workload.service)}
    answers: dict[str, dict[str, Any]] = {}

    def all_have_data() -> bool:
        for name, query in queries.items():
            if not has_data(answers.get(name, {})):
                answers[name] = answer(stack, query["expr"])
        return all(has_data(answers[n]) for n in queries if n not in EXCLUDED)

    process.wait_until(all_have_data, timeout=DATA_TIMEOUT_S, interval=2.0)
    invalid = {
        name: f"{body.get('errorType')}: {body.get('error')}"
        for name, body in answers.items()
        if body.get("status") != "success"
    }
    assert not invalid, f"Prometheus rejected dashboard queries: {invalid}"
    empty = {
        n: queries[n]["expr"] for n in queries if n not in EXCLUDED and not has_data(answers[n])
    }
    assert not empty, f"no data for {len(empty)} of {len(queries)} queries: {empty}"
    # An exclusion is honest only while its query really has nothing.
    stale = [n for n in EXCLUDED if has_data(answers[n])]
    assert not stale, f"excluded, yet Prometheus has data (drop the exclusion): {stale}"
    print(f"\n{len(queries) - len(EXCLUDED)} of {len(queries)} dashboard queries return data")
    # The stats that count the workload's events show them, not a flat 0.
    counted = [n for n in queries if n.split(" ", 1)[1] in COUNTING_STATS]
    assert len(counted) == len(COUNTING_STATS), counted
    zero = {n: numbers(answers[n]) for n in counted if not any(v > 0 for v in numbers(answers[n]))}
    assert not zero, f"stats at 0 although the workload made those events: {zero}"
    # The app's epic cache both hits and misses: the ratio is a real mix, not a constant.
    (ratio,) = [n for n in queries if n.endswith(" Cache hit ratio/A")]
    assert all(0 < v < 1 for v in numbers(answers[ratio])), numbers(answers[ratio])

    pictures = os.environ.get("OTEL_TDD_DASHBOARD_PICTURES")
    if pictures:
        # A few minutes of the steady load (and a slow spell) make the lines worth a look.
        seconds = float(os.environ.get("OTEL_TDD_DASHBOARD_PICTURES_SECONDS", "150"))
        time.sleep(seconds / 3)
        workload.app.set_latency(700)  # p95 crosses the 0.5 s line for a while
        time.sleep(seconds / 3)
        workload.app.set_latency(0)
        time.sleep(seconds / 3)
        draw_dashboards(stack, list(queries.values()), Path(pictures), workload.started)


# --- optional: a picture of each dashboard, from the same queries --------------------------------


def query_range(stack: StackUnderTest, promql: str, start: float, end: float) -> list[Any]:
    params = {"query": promql, "start": start, "end": end, "step": 5}
    url = f"{stack.prometheus_url}/api/v1/query_range?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=30) as response:
        body = json.loads(response.read())
    result: list[Any] = body["data"]["result"]
    return result


def draw_dashboards(
    stack: StackUnderTest, queries: list[dict[str, Any]], directory: Path, started: float
) -> None:
    """One PNG per dashboard: a grid of its panels, each series over the run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    end = time.time()
    by_dashboard: dict[str, dict[tuple[int, str], list[dict[str, Any]]]] = {}
    for query in queries:
        panels = by_dashboard.setdefault(query["dashboard_uid"], {})
        panels.setdefault((query["panel_id"], query["panel"]), []).append(query)
    for uid, panels in by_dashboard.items():
        columns = 3
        rows = math.ceil(len(panels) / columns)
        figure, axes = plt.subplots(rows, columns, figsize=(15, 3.2 * rows), squeeze=False)
        grid = zip(axes.flat, sorted(panels.items()), strict=False)
        for axis, ((_, title), panel_queries) in grid:
            axis.set_title(title, fontsize=10)
            drawn = 0
            for query in panel_queries:
                for series in query_range(stack, query["expr"], started, end):
                    times = [float(t) - started for t, _ in series["values"]]
                    values = [float(v) for _, v in series["values"]]
                    label = ",".join(f"{v}" for k, v in series["metric"].items() if k != "job")
                    axis.plot(times, values, label=f"{query['ref_id']} {label}"[:40])
                    drawn += 1
            if drawn == 0:
                axis.text(0.5, 0.5, "no data (excluded)", ha="center", transform=axis.transAxes)
            elif drawn <= 6:
                axis.legend(fontsize=6)
            axis.tick_params(labelsize=7)
            axis.set_xlabel("seconds into the run", fontsize=7)
        for axis in list(axes.flat)[len(panels) :]:
            axis.set_visible(False)
        figure.suptitle(f"{uid} (live stack, examples/tdd_app.py)")
        figure.tight_layout(rect=(0, 0, 1, 0.98))
        figure.savefig(directory / f"{uid}.png", dpi=80)
        plt.close(figure)
