"""Every Grafana panel query returns data from a live stack after the example workload.

Grafana cannot run here, so this is what proves the dashboards: every query of
every panel (``compose/grafana/build_dashboards.py --list-queries``, with
``$service`` set to the example app's job) runs against the stack's Prometheus
``/api/v1/query`` and must succeed with a non-empty result of real numbers.

The workload is what a user of the example would produce (``examples/tdd_app.py``):
the demo run once, then ``serve`` under a steady user flow plus the events the
quieter panels show: failed logins up to the per-user limit and past it, a bad
request, completing a task that does not exist, one request slower than the 1 s
threshold. node-exporter (Debian's ``prometheus-node-exporter``, as in
docker-compose) runs for the host panels, scraped by compose's own job.

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
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from example_app import ServedApp, app_env, run_demo
from run_helpers import REPO

from otel_tdd.stack import process

if TYPE_CHECKING:
    from conftest import StackUnderTest

pytestmark = pytest.mark.e2e

BUILD_DASHBOARDS = REPO / "compose" / "grafana" / "build_dashboards.py"
NODE_EXPORTER_INSTALL = "apt-get install prometheus-node-exporter (Debian/Ubuntu)"
DATA_TIMEOUT_S = 120.0  # scrape 5s, [1m] rates, span metrics flush: ~20s on a quiet machine

_NO_FAILURE = (
    "the Collector creates otelcol_exporter_{send,enqueue}_failed_* at the first failed "
    "export or full queue; a healthy local stack has none (tests/reliability drives the "
    "failures and counts them)"
)
_SEED_ONLY = (
    "the seed's Streamlit app caches (st.cache_data) and syncs epics both ways; the example "
    "app has no cache and no sync, and a fake one would prove nothing about the panel"
)
# "dashboard#panel_id title/refId" -> why the query cannot have data from this stack.
EXCLUDED: dict[str, str] = {
    "overview.json#16 Collector: failed and dropped/A": _NO_FAILURE,
    "overview.json#16 Collector: failed and dropped/B": _NO_FAILURE,
    "performance.json#15 Cache hit ratio/A": _SEED_ONLY,
    "performance.json#16 Sync duration P50 / P95/A": _SEED_ONLY,
    "performance.json#16 Sync duration P50 / P95/B": _SEED_ONLY,
}


# Stat panels ("title/refId") that count events the workload makes: they must be above 0.
COUNTING_STATS = (
    "Epics created/A",
    "Tasks completed/A",
    "Focus sessions/A",
    "Failed logins/A",
    "Login failure ratio/A",
    "Rate-limit hits/A",
)


def key(query: dict[str, Any]) -> str:
    return f"{query['dashboard']}#{query['panel_id']} {query['panel']}/{query['ref_id']}"


def dashboard_queries(service: str) -> list[dict[str, Any]]:
    """Every panel query, ``$service`` set to the app's job (``$instance``: all)."""
    listed = subprocess.run(
        [sys.executable, str(BUILD_DASHBOARDS), "--list-queries", "--var", f"service={service}"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=True,
    )
    queries: list[dict[str, Any]] = json.loads(listed.stdout)
    assert queries, "build_dashboards.py listed no query"
    return queries


def test_every_exclusion_names_a_real_query() -> None:
    names = {key(q) for q in dashboard_queries("x")}
    assert set(EXCLUDED) <= names, set(EXCLUDED) - names


# --- node-exporter, scraped by compose's job ------------------------------------------------


@pytest.fixture(scope="module")
def node_exporter(stack: StackUnderTest) -> Iterator[str]:
    """prometheus-node-exporter on a free loopback port, added to the stack's Prometheus."""
    binary = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if binary is None:
        pytest.fail(f"prometheus-node-exporter not found; install: {NODE_EXPORTER_INSTALL}")
    (port,) = process.free_ports(1)
    argv = [binary, f"--web.listen-address=127.0.0.1:{port}"]
    log = stack.state_dir / "logs" / "node-exporter.log"
    proc = process.start(argv, log_path=log, cwd=stack.state_dir)
    try:
        if not process.wait_until(
            lambda: process.http_ok(f"http://127.0.0.1:{port}/metrics"),
            timeout=30,
            alive=lambda: proc.poll() is None,
        ):
            pytest.fail(f"node-exporter did not start:\n{process.tail(log)}", pytrace=False)
        add_compose_scrape_job(stack, "node-exporter", f"127.0.0.1:{port}")
        stack.wait_for(
            lambda: stack.query_value('up{job="node-exporter"}') == 1,
            30,
            "Prometheus scraping node-exporter",
        )
        yield f"127.0.0.1:{port}"
    finally:
        process.stop(proc.pid, argv, timeout=15)


def add_compose_scrape_job(stack: StackUnderTest, job_name: str, target: str) -> None:
    """compose's scrape job ``job_name``, aimed at ``target``, into the running Prometheus."""
    compose = yaml.safe_load((REPO / "compose" / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in compose["scrape_configs"] if j["job_name"] == job_name]
    job["static_configs"] = [{"targets": [target]}]
    path = stack.config_path("prometheus")
    config = yaml.safe_load(path.read_text())
    config["scrape_configs"].append(job)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    request = urllib.request.Request(stack.prometheus_url + "/-/reload", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


# --- the workload ------------------------------------------------------------------------------


@dataclass
class Workload:
    service: str
    stack: StackUnderTest
    app: ServedApp
    started: float


@pytest.fixture(scope="module")
def workload(
    stack: StackUnderTest, node_exporter: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workload]:
    """The demo once, then ``serve`` under a steady flow and the rarer events, as one job."""
    service = f"tdd-dash-{uuid.uuid4().hex[:8]}"
    started = time.time()
    run_demo(stack, service)
    app = ServedApp(tmp_path_factory.mktemp("app"), service, app_env(stack, alerting=False))
    stop = threading.Event()
    failures: list[str] = []

    def expect(path: str, body: dict[str, Any], status: int = 200) -> Any:
        got, answer = app.post(path, body)
        if got != status:
            failures.append(f"POST {path} {body}: {got} {answer}, expected {status}")
        return answer

    def steady() -> None:
        """One user flow every ~0.5 s, as three users with sessions."""
        cycle = 0
        while not stop.wait(0.5):
            cycle += 1
            user = {"user_id": f"user_{cycle % 3}", "session_id": f"sess_{cycle % 3}"}
            epic = expect("/epics", {"name": f"Epic {cycle}", "type": "web", **user})
            task = expect("/tasks", {"epic_id": epic["epic_id"], "title": "Task", **user})
            expect("/tasks/complete", {"task_id": task["task_id"], **user})
            expect("/focus", {"task_id": task["task_id"], "seconds": 600 + cycle % 1200, **user})
            expect("/login", {"username": f"user_{cycle % 3}", "password": "correct horse"})

    flow = threading.Thread(target=steady, name="steady-load", daemon=True)
    flow.start()
    try:
        # As in life, the app has been up a while (scraped) before anything unusual happens:
        # a counter's increments before its first sample are invisible to increase().
        stack.wait_for(
            lambda: stack.query_value(f'count(tdd_database_up{{job="{service}"}})') == 2,
            60,
            "the demo's and the served app's series in Prometheus",
        )
        # The rarer events, once each: they feed the security, error and threshold panels.
        for attempt in range(12):  # 5 failures, then 429 (rate_limit_exceeded) for the rest
            status = 200 if attempt < 5 else 429
            expect("/login", {"username": "mallory", "password": f"guess-{attempt}"}, status)
        expect("/tasks", {"title": "no epic"}, 400)  # bad request
        expect("/tasks/complete", {"task_id": 10**9}, 500)  # an error inside a tracked span
        assert app.set_latency(1100) == 200
        expect("/epics", {"name": "slow"})  # over the 1 s threshold of api_response
        assert app.set_latency(0) == 200
        yield Workload(service, stack, app, started)
    finally:
        stop.set()
        flow.join(15)
        app.stop()
    assert not failures, failures


def answer(stack: StackUnderTest, promql: str) -> dict[str, Any]:
    """Prometheus's whole answer to an instant query, errors included."""
    url = f"{stack.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = json.loads(error.read() or b"{}")
    return body


def numbers(body: dict[str, Any]) -> list[float]:
    """The sample values of an answer (a vector, or a scalar)."""
    if body.get("status") != "success":
        return []
    data = body["data"]
    if data["resultType"] == "scalar":
        return [float(data["result"][1])]
    return [float(series["value"][1]) for series in data["result"]]


def has_data(body: dict[str, Any]) -> bool:
    """Success and at least one real number (a NaN quantile is an empty panel in Grafana)."""
    return any(not math.isnan(value) for value in numbers(body))


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
