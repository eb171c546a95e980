"""What the two live dashboard proofs share: the queries, the workload, node-exporter, exclusions.

``tests/e2e/test_dashboards_live.py`` runs every Grafana panel query against the
stack's Prometheus, ``tests/e2e/test_remote_write_vm.py`` against VictoriaMetrics
fed by that Prometheus' ``remote_write``. Both drive the same workload (the example
app as a user would run it, plus the rarer events the quieter panels show) with
node-exporter scraped by compose's own job, so both hold the same panels to the
same rule: a query returns data unless it is in :data:`EXCLUDED` (and an excluded
query must really be empty). The fixtures are in ``tests/e2e/conftest.py``.
"""

from __future__ import annotations

import json
import math
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
from contextlib import contextmanager
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

BUILD_DASHBOARDS = REPO / "compose" / "grafana" / "build_dashboards.py"
NODE_EXPORTER_INSTALL = "apt-get install prometheus-node-exporter (Debian/Ubuntu)"
DATA_TIMEOUT_S = 120.0  # scrape 5s, [1m] rates, span metrics flush: ~20s on a quiet machine

_NO_FAILURE = (
    "the Collector creates otelcol_exporter_{send,enqueue}_failed_* at the first failed "
    "export or full queue; a healthy local stack has none (tests/reliability drives the "
    "failures and counts them)"
)
# "dashboard#panel_id title/refId" -> why the query cannot have data from this stack.
# Both live proofs use it; the VictoriaMetrics one may add its own (with a reason).
EXCLUDED: dict[str, str] = {
    "overview.json#18 Collector: failed and dropped/A": _NO_FAILURE,
    "overview.json#18 Collector: failed and dropped/B": _NO_FAILURE,
}


def key(query: dict[str, Any]) -> str:
    """A query's name in the exclusion lists: ``dashboard#panel_id title/refId``."""
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


# --- answers of a Prometheus-compatible /api/v1/query ----------------------------------------


def answer(base_url: str, promql: str) -> dict[str, Any]:
    """The whole answer to an instant query (Prometheus or VictoriaMetrics), errors included."""
    url = f"{base_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
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


# --- node-exporter, scraped by compose's job ------------------------------------------------


@contextmanager
def running_node_exporter(stack: StackUnderTest) -> Iterator[str]:
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
    """compose's scrape job ``job_name``, aimed at ``target``, into the running Prometheus.

    Read-modify-write of the stack's config: what else was added (a ``remote_write``) stays.
    """
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


@contextmanager
def running_workload(stack: StackUnderTest, directory: Path, prefix: str) -> Iterator[Workload]:
    """The demo once, then ``serve`` under a steady flow and the rarer events, as one job.

    The app syncs every 5 s and looks epics up through its cache (cache and sync
    panels); the rarer events feed the security, error and threshold panels.
    """
    service = f"{prefix}-{uuid.uuid4().hex[:8]}"
    started = time.time()
    run_demo(stack, service)
    app = ServedApp(directory, service, app_env(stack, alerting=False))
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
