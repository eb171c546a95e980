"""Our Collector in front of the real stores: traces to Jaeger v2, logs to VictoriaLogs.

The built Collector runs collector/config.yaml as shipped, its store variables
pointing at a VictoriaLogs and a Jaeger started for these tests
(collector_stores_fixtures.py; binaries from `otel-tdd stores build`). An app
sends through the Python SDK; what it made is read back by trace id from both
stores, and a histogram recorded inside a span shows up in Prometheus as an
exemplar naming that trace. The outages are in test_collector_store_outage.py.
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from collector_stores_helpers import App, Collector, LogStore
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.trace import SpanKind
from stores_helpers import JaegerUnderTest, start, wait_for

from otel_tdd import stores_query
from otel_tdd.exemplars_query import fetch_exemplars
from otel_tdd.stack import process
from otel_tdd.stack.collector import find_config

pytest_plugins = ["stores_fixtures", "collector_stores_fixtures"]
pytestmark = pytest.mark.integration

LOGS_EXPORTER = "otlp_http/victorialogs"
TRACES_EXPORTER = "otlp_grpc/jaeger"


@dataclass
class Sent:
    service: str
    trace_id: str
    span_names: list[str]
    messages: list[str]


def one_request(app: App) -> Sent:
    """A server span with two nested spans and a record in each; a secret attribute."""
    names = ["GET /cart", "load cart", "SELECT items"]
    messages = ["cart requested", "cart loaded", "items selected"]
    with app.tracer.start_as_current_span(names[0], kind=SpanKind.SERVER) as root:
        app.log.info(messages[0])
        with app.tracer.start_as_current_span(names[1], attributes={"password": "hunter2"}):
            app.log.debug(messages[1])
            with app.tracer.start_as_current_span(names[2], kind=SpanKind.CLIENT):
                app.log.warning(messages[2])
        trace_id = format(root.get_span_context().trace_id, "032x")
    return Sent(app.service, trace_id, names, messages)


# --- the behaviours --------------------------------------------------------------------


def test_spans_reach_jaeger_and_records_reach_victorialogs_by_trace_id(
    store_collector: Collector, log_store: LogStore, jaeger_store: JaegerUnderTest
) -> None:
    app = App(store_collector, f"via-collector-{uuid.uuid4().hex[:8]}")
    try:
        sent = one_request(app)
        app.flush()
    finally:
        app.close()

    spans = wait_for(
        lambda: (
            (s := stores_query.fetch_trace(jaeger_store.query_url, sent.trace_id))
            and len(s) >= len(sent.span_names)
            and s
        ),
        60,
        f"Jaeger to hold trace {sent.trace_id}\n{store_collector.log_tail()}",
    )
    query = stores_query.logsql(trace_id=sent.trace_id)
    records = wait_for(
        lambda: (
            (r := stores_query.fetch_logs(log_store.url, query))
            and len(r) >= len(sent.messages)
            and r
        ),
        60,
        f"VictoriaLogs to hold the records of {sent.trace_id}\n{store_collector.log_tail()}",
    )
    assert sorted(s.name for s in spans) == sorted(sent.span_names)
    assert {s.service for s in spans} == {sent.service}
    # attributes/secrets ran: the trace came through our pipeline, not around it.
    assert all("password" not in s.attributes for s in spans), [s.attributes for s in spans]
    assert [r.message for r in records] == sent.messages
    assert {r.trace_id for r in records} == {sent.trace_id}
    for record in records:
        assert record.fields["otelcol.tier"] == "single-node"  # the resource processor
        # VL-Stream-Fields: one stream per service and environment, not per process.
        assert record.fields["_stream"] == (
            f'{{deployment.environment="test",service.name="{sent.service}"}}'
        )
    assert store_collector.metric("otelcol_exporter_sent_spans", TRACES_EXPORTER) >= len(spans)
    assert store_collector.metric("otelcol_exporter_sent_log_records", LOGS_EXPORTER) >= len(
        records
    )
    files = Path(store_collector.env["OTELCOL_FILE_DIR"])
    assert not files.exists(), sorted(files.iterdir())


# --- Prometheus: exemplars, and the stores' own metrics ------------------------------------


# Beside collector/ in the checkout and in the wheel's assets.
COMPOSE = find_config().parent.parent / "compose"


@pytest.fixture
def prometheus(
    store_collector: Collector, log_store: LogStore, jaeger_store: JaegerUnderTest, tmp_path: Path
) -> Iterator[str]:
    """Debian's Prometheus with compose's feature flags (exemplar storage) and compose's
    `otel-collector`, `victorialogs` and `jaeger` jobs (honor_labels and all), each
    pointed at the process of this test."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus not found: apt-get install prometheus", pytrace=False)
    targets = {
        "otel-collector": store_collector.exporter_address,
        "victorialogs": log_store.url.removeprefix("http://"),
        "jaeger": urlsplit(jaeger_store.metrics_url).netloc,
    }
    shipped = yaml.safe_load((COMPOSE / "prometheus" / "prometheus.yml").read_text())
    jobs = [j for j in shipped["scrape_configs"] if j["job_name"] in targets]
    assert len(jobs) == len(targets), [j["job_name"] for j in jobs]
    for job in jobs:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"global": {"scrape_interval": "1s"}, "scrape_configs": jobs}))
    (port,) = process.free_ports(1)
    compose = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
    features = [a for a in compose["services"]["prometheus"]["command"] if "enable-feature" in a]
    argv = [
        binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'prom-data'}",
        f"--web.listen-address=127.0.0.1:{port}", *features,
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    running = start(argv, tmp_path / "prometheus.log", f"{url}/-/ready", "Prometheus")
    try:
        yield url
    finally:
        process.stop(running.pid, running.argv)


def test_a_histogram_exemplar_reaches_prometheus_and_names_a_trace_jaeger_holds(
    store_collector: Collector, jaeger_store: JaegerUnderTest, prometheus: str
) -> None:
    """Recorded inside a sampled span, the bucket's exemplar carries the span's trace id
    through OTLP, the Collector's OpenMetrics exporter and Prometheus' exemplar storage."""
    service = f"exemplars-{uuid.uuid4().hex[:8]}"
    metric = "shop_request_duration_seconds"
    app = App(store_collector, service)
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{store_collector.otlp_http}/v1/metrics"),
        export_interval_millis=3_600_000,  # one export, below: the SDK clears exemplars at each
    )
    buckets = View(
        instrument_name=metric,
        aggregation=ExplicitBucketHistogramAggregation([0.05, 0.1, 0.25, 0.5, 1.0]),
    )
    meters = MeterProvider(
        resource=app.tracer_provider.resource, metric_readers=[reader], views=[buckets]
    )
    histogram = meters.get_meter("tests.collector_stores").create_histogram(metric, unit="s")
    try:
        with app.tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER) as span:
            histogram.record(0.3, {"route": "/orders"})
            trace_id = format(span.get_span_context().trace_id, "032x")
        app.flush()
        assert meters.force_flush(10_000), "metrics not exported"
        found = wait_for(
            lambda: [e for e in fetch_exemplars(prometheus, metric) if e.trace_id == trace_id],
            60,
            f"an exemplar of trace {trace_id} in Prometheus\n{store_collector.log_tail()}",
        )
    finally:
        meters.shutdown()
        app.close()
    (exemplar,) = found
    assert exemplar.value == 0.3
    assert exemplar.series["le"] == "0.5"
    # honor_labels: the app's job (service.name), not the scrape job's name.
    assert exemplar.series["job"] == service
    spans = wait_for(
        lambda: stores_query.fetch_trace(jaeger_store.query_url, trace_id),
        60,
        f"Jaeger to hold trace {trace_id}",
    )
    assert [s.name for s in spans] == ["POST /orders"]


def up(prometheus: str) -> dict[str, str]:
    query = urllib.parse.urlencode({"query": "up"})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query?{query}", timeout=10) as response:
        result = json.load(response)["data"]["result"]
    return {r["metric"]["job"]: r["value"][1] for r in result}


def test_prometheus_scrapes_both_stores_with_the_compose_jobs(
    prometheus: str, log_store: LogStore
) -> None:
    """`up` of the two store jobs is what TelemetryStoreDown watches: 1, then 0 when one dies."""
    wait_for(
        lambda: up(prometheus) == {"otel-collector": "1", "victorialogs": "1", "jaeger": "1"},
        30,
        "Prometheus to scrape the Collector's exporter and both stores",
    )
    log_store.kill()
    wait_for(lambda: up(prometheus).get("victorialogs") == "0", 30, "up{job=victorialogs} == 0")
