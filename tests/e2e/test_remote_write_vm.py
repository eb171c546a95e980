"""Metrics at scale: Prometheus remote_write into VictoriaMetrics, queried like Prometheus.

VictoriaMetrics (Debian's ``victoria-metrics``) stands in for Mimir, Thanos or a
VictoriaMetrics cluster: the same ``remote_write`` block
(``compose/prometheus/remote-write.example.yml``, only its ``url`` changed) is
merged into the local stack's Prometheus, ``examples/tdd_app.py`` runs a known
workload against the stack's Collector, and then

* VictoriaMetrics answers the app's metrics through its Prometheus-compatible
  ``/api/v1/query`` with the counts the workload implies;
* under the live Prometheus proof's workload (``dashboard_workload.py``: the
  example app serving a steady flow plus the rarer events, node-exporter scraped
  by compose's job), every Grafana dashboard query (``build_dashboards.py
  --list-queries``) parses there and returns data, except the explained
  exclusions below (that proof's, shared); and whatever returns data in
  Prometheus returns data in VictoriaMetrics too.

A missing ``victoria-metrics`` binary FAILS (with the install line), never skips.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
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
from dashboard_workload import DATA_TIMEOUT_S, Workload, answer, dashboard_queries, has_data, key
from dashboard_workload import EXCLUDED as SHARED_EXCLUDED

from otel_tdd.stack import process

if TYPE_CHECKING:
    from conftest import StackUnderTest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "compose" / "prometheus" / "remote-write.example.yml"
SCALING_DOC = ROOT / "docs" / "scaling.md"
VM_INSTALL = "apt-get install victoria-metrics (Debian/Ubuntu)"
EPICS, TASKS, SESSIONS = 3, 2, 2
# Scrape 5 s + remote_write batch deadline 5 s + span metrics' first-0 flush: ~20 s.
VM_WAIT_S = 60.0
PROMETHEUS_VERSION = "2.42 (Debian bookworm)"

# Dashboard queries ("dashboard#panel_id title/refId") that return nothing here, and
# why: the live Prometheus proof's list (the same workload, so the same gaps of the
# local stack), plus any VictoriaMetrics-only gap with its reason (none today). Each
# must be empty in Prometheus too (checked below).
VM_ONLY_EXCLUDED: dict[str, str] = {}
EXCLUDED: dict[str, str] = {**SHARED_EXCLUDED, **VM_ONLY_EXCLUDED}


# --- VictoriaMetrics as a real process ------------------------------------------------------


@dataclass(frozen=True)
class VictoriaMetrics:
    url: str
    log: Path

    def query(self, promql: str, timeout: float = 10.0) -> dict[str, Any]:
        """``GET /api/v1/query``; the JSON body, errors included (a 4xx/5xx is returned)."""
        return _get_json(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))

    def value(self, promql: str) -> float | None:
        body = self.query(promql)
        result = body.get("data", {}).get("result") or []
        return sum(float(series["value"][1]) for series in result) if result else None


def _get_json(url: str, timeout: float = 10.0) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read() or b"{}")
    return body


def victoria_metrics_binary() -> str:
    path = shutil.which("victoria-metrics")
    if path is None:
        pytest.fail(
            f"victoria-metrics not found on PATH; install with: {VM_INSTALL}", pytrace=False
        )
    return path


@pytest.fixture(scope="module")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    """VictoriaMetrics single node on a free 127.0.0.1 port (its default is all interfaces)."""
    home = tmp_path_factory.mktemp("victoria-metrics")
    (port,) = process.free_ports(1)
    argv = [
        victoria_metrics_binary(),
        f"-httpListenAddr=127.0.0.1:{port}",
        f"-storageDataPath={home / 'data'}",
        "-retentionPeriod=1d",
        # Instant queries see samples at once (default: the last 30 s are hidden),
        # and no response cache hides fresh samples from the next poll.
        "-search.latencyOffset=0s",
        "-search.disableCache",
    ]
    log = home / "victoria-metrics.log"
    proc = process.start(argv, log_path=log, cwd=home)
    url = f"http://127.0.0.1:{port}"
    try:
        if not process.wait_until(
            lambda: process.http_ok(f"{url}/health"), timeout=30, alive=lambda: proc.poll() is None
        ):
            pytest.fail(f"victoria-metrics did not start:\n{process.tail(log)}", pytrace=False)
        yield VictoriaMetrics(url, log)
    finally:
        process.stop(proc.pid, argv, timeout=15)


# --- Prometheus with the example's remote_write --------------------------------------------


def example_block() -> dict[str, Any]:
    """The one remote_write entry the example ships."""
    (entry,) = yaml.safe_load(EXAMPLE.read_text())["remote_write"]
    assert isinstance(entry, dict)
    return entry


@pytest.fixture(scope="module")
def remote_writing(stack: StackUnderTest, victoria: VictoriaMetrics) -> StackUnderTest:
    """The module's stack, its Prometheus reloaded with the example block aimed at VM."""
    config_path = stack.config_path("prometheus")
    config = yaml.safe_load(config_path.read_text())
    config["remote_write"] = [{**example_block(), "url": f"{victoria.url}/api/v1/write"}]
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    request = urllib.request.Request(f"{stack.prometheus_url}/-/reload", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    loaded = _get_json(f"{stack.prometheus_url}/api/v1/status/config")["data"]["yaml"]
    assert f"{victoria.url}/api/v1/write" in loaded, loaded
    return stack


@dataclass(frozen=True)
class Demo:
    service: str
    stack: StackUnderTest
    victoria: VictoriaMetrics


@pytest.fixture(scope="module")
def demo(remote_writing: StackUnderTest, victoria: VictoriaMetrics) -> Demo:
    """examples/tdd_app.py once, sending to the stack's Collector."""
    service = f"tdd-vm-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": remote_writing.otlp_http_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "OTEL_TDD_LOG_STREAM": "none",
    }
    app = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "tdd_app.py"),
            *("--epics", str(EPICS), "--tasks", str(TASKS), "--sessions", str(SESSIONS)),
            *("--service-name", service),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert app.returncode == 0, app.stdout[-2000:] + app.stderr[-2000:]
    return Demo(service, remote_writing, victoria)


def wait_vm_value(demo: Demo, promql: str, expected: float) -> None:
    last: list[float | None] = [None]

    def matches() -> bool:
        last[0] = demo.victoria.value(promql)
        return last[0] == expected

    demo.stack.wait_for(
        matches,
        VM_WAIT_S,
        f"VictoriaMetrics: {promql} == {expected} (last: {last}); "
        f"its log:\n{process.tail(demo.victoria.log, 10)}",
    )


# --- the app's metrics in VictoriaMetrics -------------------------------------------------------


def test_the_apps_metrics_are_queryable_in_victoria_metrics(demo: Demo) -> None:
    job = demo.service
    wait_vm_value(demo, f'sum(tdd_epics_created_total{{job="{job}"}})', EPICS)
    wait_vm_value(demo, f'sum(tdd_tasks_completed_total{{job="{job}"}})', EPICS * TASKS)
    wait_vm_value(demo, f'sum(tdd_focus_sessions_total{{job="{job}"}})', EPICS * TASKS * SESSIONS)
    requests = EPICS * (1 + TASKS * (2 + SESSIONS))
    wait_vm_value(demo, f'sum(tdd_response_time_seconds_count{{job="{job}"}})', requests)
    # Span metrics and the Collector's own metrics ride along: everything Prometheus ingests.
    wait_vm_value(
        demo,
        f'sum(traces_span_metrics_calls_total{{service_name="{job}",'
        'span_name="EpicService.create_epic"})',
        EPICS,
    )
    assert demo.victoria.value('up{job="otel-collector"}') == 1.0


def test_the_exclusions_name_real_queries() -> None:
    names = {key(q) for q in dashboard_queries("x")}
    assert set(EXCLUDED) <= names, set(EXCLUDED) - names


@pytest.fixture(scope="module")
def vm_workload(remote_writing: StackUnderTest, workload: Workload) -> Workload:
    """The live Prometheus proof's workload (node-exporter included), remote-written to VM.

    remote_writing comes first, so VictoriaMetrics receives the workload from its start.
    """
    return workload


def test_every_dashboard_query_parses_and_returns_data_in_victoria_metrics(
    demo: Demo, vm_workload: Workload
) -> None:
    service, victoria, stack = vm_workload.service, demo.victoria, demo.stack
    # The served app's data first, so that its rate() windows hold samples.
    stack.wait_for(
        lambda: bool(victoria.value(f'sum(tdd_epics_created_total{{job="{service}"}})')),
        VM_WAIT_S,
        f"the served app ({service}) in VictoriaMetrics",
    )
    queries = {key(q): q for q in dashboard_queries(service)}
    answers: dict[str, dict[str, Any]] = {}

    def all_answered() -> bool:
        for name, query in queries.items():
            if not has_data(answers.get(name, {})):
                answers[name] = victoria.query(query["expr"])
        return all(has_data(answers[n]) for n in queries if n not in EXCLUDED)

    process.wait_until(all_answered, timeout=DATA_TIMEOUT_S, interval=2.0)
    unparsed = {
        name: f"{body.get('errorType')}: {body.get('error')}"
        for name, body in answers.items()
        if body.get("status") != "success"
    }
    assert not unparsed, f"VictoriaMetrics rejected dashboard queries: {unparsed}"
    empty = [n for n in queries if n not in EXCLUDED and not has_data(answers[n])]
    assert not empty, f"no data in VictoriaMetrics for {len(empty)} of {len(queries)}: {empty}"
    print(f"\n{len(queries) - len(EXCLUDED)} of {len(queries)} dashboard queries return data")

    # Parity with the stack's Prometheus: data there means data here, and an
    # exclusion is honest only while Prometheus has nothing for it either.
    gaps, excluded_but_data, rejected_by_prometheus = [], [], {}
    for name, query in queries.items():
        in_prometheus = answer(stack.prometheus_url, query["expr"])
        if in_prometheus.get("status") != "success":
            rejected_by_prometheus[name] = str(in_prometheus.get("error"))
            continue
        if has_data(in_prometheus) and not has_data(answers[name]):
            gaps.append(name)
        if name in EXCLUDED and (has_data(in_prometheus) or has_data(answers[name])):
            excluded_but_data.append(name)
    if rejected_by_prometheus:
        # Not VictoriaMetrics' business, but worth seeing: e.g. Prometheus 2.42 refuses
        # rate({__name__=~"a|b"}) when two names leave identical label sets.
        print(f"\nqueries Prometheus {PROMETHEUS_VERSION} rejects: {rejected_by_prometheus}")
    assert not gaps, f"data in Prometheus but not in VictoriaMetrics: {gaps}"
    assert not excluded_but_data, f"excluded, yet there is data: {excluded_but_data}"


# --- the documented block --------------------------------------------------------------------


def test_the_example_block_passes_promtool_inside_prometheus_yml(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: apt-get install prometheus", pytrace=False)
    prometheus_dir = ROOT / "compose" / "prometheus"
    config = yaml.safe_load((prometheus_dir / "prometheus.yml").read_text())
    config["remote_write"] = [example_block()]
    shutil.copytree(prometheus_dir / "rules", tmp_path / "rules")
    merged = tmp_path / "prometheus.yml"
    merged.write_text(yaml.safe_dump(config, sort_keys=False))
    check = subprocess.run(
        [promtool, "check", "config", str(merged)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_docs_show_the_same_block_for_mimir_and_thanos_receive() -> None:
    """docs/scaling.md's blocks differ from the example only in url (and Mimir's tenant)."""
    text = SCALING_DOC.read_text()
    blocks = [
        yaml.safe_load(match)["remote_write"][0]
        for match in re.findall(r"```yaml\n(remote_write:\n.*?)```", text, re.S)
    ]
    urls = {block["url"] for block in blocks}
    assert any("/api/v1/push" in u for u in urls), urls  # Mimir
    assert any("/api/v1/receive" in u for u in urls), urls  # Thanos Receive
    assert any("/api/v1/write" in u for u in urls), urls  # VictoriaMetrics
    reference = {k: v for k, v in example_block().items() if k != "url"}
    for block in blocks:
        rest = {k: v for k, v in block.items() if k not in ("url", "headers")}
        assert rest == reference, block["url"]
