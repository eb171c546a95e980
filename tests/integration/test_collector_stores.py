"""Our Collector in front of the real stores: traces to Jaeger v2, logs to VictoriaLogs.

The Collector runs collector/config.yaml as shipped (no files overlay), on free
127.0.0.1 ports, with its store variables pointing at a VictoriaLogs and a Jaeger
of this module (binaries from `otel-tdd stores build`, started as
stores_fixtures.py does; not the session's pair, whose contents test_stores.py
counts). An app sends through the Python SDK; what it made is read back by trace
id from both stores. Then the outages, bounded: the log store killed while N
records are sent, restarted on its port and data dir, and every record arrives,
also when the Collector itself is killed and restarted in the middle.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind
from stores_helpers import JaegerUnderTest, Running, running_jaeger, start, wait_for

from otel_tdd import stores_query
from otel_tdd.exemplars_query import fetch_exemplars
from otel_tdd.stack import process
from otel_tdd.stack.collector import collector_binary, collector_env, find_config
from otel_tdd.stack.local import find_compose_dir
from otel_tdd.stack.store_configs import victoria_logs_args, victoria_logs_url

pytest_plugins = ["stores_fixtures"]
pytestmark = pytest.mark.integration

LOGS_EXPORTER = "otlp_http/victorialogs"
TRACES_EXPORTER = "otlp_grpc/jaeger"
OUTAGE_RECORDS = 300  # records sent while the log store is down


# --- the processes -----------------------------------------------------------------


@dataclass
class LogStore:
    """A VictoriaLogs of our own: killed and restarted on the same port and data dir."""

    binary: Path
    base: Path
    port: int
    running: Running | None = None

    @property
    def url(self) -> str:
        return victoria_logs_url(self.port)

    def start(self) -> None:
        argv = victoria_logs_args(self.binary, self.port, self.base / "data")
        self.running = start(
            argv, self.base / "victoria-logs.log", f"{self.url}/health", "VictoriaLogs"
        )

    def kill(self) -> None:
        """SIGKILL by pid: a crash, not a polite stop."""
        assert self.running is not None
        kill_and_wait(self.running.pid)
        self.running = None

    def stop(self) -> None:
        if self.running is not None:
            process.stop(self.running.pid, self.running.argv)
            self.running = None


@dataclass
class Collector:
    """Our Collector on fixed free ports and a queue dir, so a restart finds its queue."""

    base: Path
    env: dict[str, str]
    running: Running | None = None
    starts: int = 0

    @property
    def otlp_http(self) -> str:
        return f"http://{self.env['OTELCOL_OTLP_HTTP_ENDPOINT']}"

    @property
    def exporter_address(self) -> str:
        return self.env["OTELCOL_PROMETHEUS_ENDPOINT"]

    @property
    def telemetry_url(self) -> str:
        return f"http://127.0.0.1:{self.env['OTELCOL_TELEMETRY_PORT']}/metrics"

    def start(self) -> None:
        self.starts += 1
        argv = [str(collector_binary()), f"--config={find_config()}"]
        health = f"http://{self.env['OTELCOL_HEALTH_ENDPOINT']}/"
        log = self.base / f"collector-{self.starts}.log"
        self.running = start(argv, log, health, "the Collector", env=collector_env(self.env))

    def kill(self) -> None:
        assert self.running is not None
        kill_and_wait(self.running.pid)
        self.running = None

    def stop(self) -> None:
        if self.running is not None:
            process.stop(self.running.pid, self.running.argv)
            self.running = None

    def log_tail(self) -> str:
        return process.tail(self.base / f"collector-{self.starts}.log", 30)

    def metric(self, name: str, exporter: str) -> float:
        """The sum of ``name{exporter=...}`` on the Collector's own /metrics (0 if absent)."""
        with urllib.request.urlopen(self.telemetry_url, timeout=5) as response:
            text = response.read().decode()
        pattern = re.compile(rf'^{name}\{{[^}}]*exporter="{re.escape(exporter)}"[^}}]*\}} (\S+)$')
        return sum(float(m.group(1)) for m in map(pattern.match, text.splitlines()) if m)


def kill_and_wait(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    assert process.wait_until(lambda: not process.is_running(pid), timeout=10), pid


@pytest.fixture(scope="module")
def jaeger_store(
    store_binaries: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JaegerUnderTest]:
    with running_jaeger(store_binaries["jaeger"], tmp_path_factory.mktemp("jaeger")) as running:
        yield running


@pytest.fixture
def log_store(store_binaries: dict[str, Path], tmp_path: Path) -> Iterator[LogStore]:
    (port,) = process.free_ports(1)
    store = LogStore(store_binaries["victoria-logs"], tmp_path / "victoria-logs", port)
    store.start()
    try:
        yield store
    finally:
        store.stop()


@pytest.fixture
def collector(
    log_store: LogStore, jaeger_store: JaegerUnderTest, tmp_path: Path
) -> Iterator[Collector]:
    grpc, http, exporter, health, telemetry = process.free_ports(5)
    env = {
        "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc}",
        "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http}",
        "OTELCOL_PROMETHEUS_ENDPOINT": f"127.0.0.1:{exporter}",
        "OTELCOL_HEALTH_ENDPOINT": f"127.0.0.1:{health}",
        "OTELCOL_TELEMETRY_PORT": str(telemetry),
        "OTELCOL_TELEMETRY_HOST": "127.0.0.1",
        "OTELCOL_LOGS_STORE_ENDPOINT": log_store.url,
        "OTELCOL_TRACES_STORE_ENDPOINT": jaeger_store.otlp_grpc,
        "OTELCOL_QUEUE_DIR": str(tmp_path / "queue"),
        # Nothing may land in files: config.yaml has no file exporter left.
        "OTELCOL_FILE_DIR": str(tmp_path / "files"),
    }
    running = Collector(tmp_path, env)
    running.start()
    try:
        yield running
    finally:
        running.stop()


# --- the app -----------------------------------------------------------------------


@dataclass
class Sent:
    service: str
    trace_id: str
    span_names: list[str]
    messages: list[str]


class App:
    """The Python SDK exporting spans and log records to the Collector over OTLP/HTTP."""

    def __init__(self, collector: Collector, service: str) -> None:
        self.service = service
        resource = Resource.create({"service.name": service, "deployment.environment": "test"})
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{collector.otlp_http}/v1/traces"))
        )
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{collector.otlp_http}/v1/logs"))
        )
        self.handler = LoggingHandler(logger_provider=self.logger_provider)
        self.log = logging.getLogger(f"tests.collector_stores.{service}")
        self.log.propagate = False
        self.log.setLevel(logging.DEBUG)
        self.log.addHandler(self.handler)
        self.tracer = self.tracer_provider.get_tracer("tests.collector_stores")

    def flush(self) -> None:
        assert self.tracer_provider.force_flush(10_000), "spans not exported"
        assert self.logger_provider.force_flush(10_000), "log records not exported"

    def close(self) -> None:
        self.log.removeHandler(self.handler)
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()


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


def records_of_run(store_url: str, run: str, limit: int) -> stores_query.LogPage:
    return stores_query.fetch_logs(store_url, stores_query.logsql(f'run:"{run}"'), limit=limit)


# --- the behaviours --------------------------------------------------------------------


def test_spans_reach_jaeger_and_records_reach_victorialogs_by_trace_id(
    collector: Collector, log_store: LogStore, jaeger_store: JaegerUnderTest
) -> None:
    app = App(collector, f"via-collector-{uuid.uuid4().hex[:8]}")
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
        f"Jaeger to hold trace {sent.trace_id}\n{collector.log_tail()}",
    )
    query = stores_query.logsql(trace_id=sent.trace_id)
    records = wait_for(
        lambda: (
            (r := stores_query.fetch_logs(log_store.url, query))
            and len(r) >= len(sent.messages)
            and r
        ),
        60,
        f"VictoriaLogs to hold the records of {sent.trace_id}\n{collector.log_tail()}",
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
    assert collector.metric("otelcol_exporter_sent_spans", TRACES_EXPORTER) >= len(spans)
    assert collector.metric("otelcol_exporter_sent_log_records", LOGS_EXPORTER) >= len(records)
    files = Path(collector.env["OTELCOL_FILE_DIR"])
    assert not files.exists(), sorted(files.iterdir())


def send_numbered(app: App, run: str, count: int) -> None:
    for seq in range(count):
        app.log.info("outage record %d", seq, extra={"run": run, "seq": seq})
    app.flush()


def wait_queued(collector: Collector, count: int) -> None:
    """Until the logs exporter's queue holds the sent records (and not an item less)."""
    wait_for(
        lambda: (
            collector.metric("otelcol_exporter_queue_size", LOGS_EXPORTER) > 0
            and collector.metric("otelcol_exporter_in_flight_requests", LOGS_EXPORTER) > 0
        ),
        30,
        f"the logs queue to hold the batch\n{collector.log_tail()}",
    )
    # Past the batch processor (200 ms), the exporter has them: in its queue on disk.
    wait_for(
        lambda: batched_items(collector) >= count,
        30,
        f"{count} records past the batch processor\n{collector.log_tail()}",
    )


def batched_items(collector: Collector) -> float:
    """Items the batch processor has passed on, every signal (these tests send only logs)."""
    with urllib.request.urlopen(collector.telemetry_url, timeout=5) as response:
        text = response.read().decode()
    found = re.search(r"^otelcol_processor_batch_batch_send_size_sum\{[^}]*\} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def assert_all_arrive(log_store: LogStore, run: str, count: int, collector: Collector) -> None:
    records = wait_for(
        lambda: (r := records_of_run(log_store.url, run, count + 10)) and len(r) >= count and r,
        90,
        f"all {count} records of run {run} in VictoriaLogs\n{collector.log_tail()}",
    )
    time.sleep(2)  # a duplicate would come with the next retry round (max_interval 5 s)
    records = records_of_run(log_store.url, run, count + 10)
    seqs = sorted(int(r.fields["seq"]) for r in records)
    assert seqs == list(range(count)), f"{len(seqs)} records, missing or doubled: {seqs[:20]}..."
    assert collector.metric("otelcol_exporter_send_failed_log_records", LOGS_EXPORTER) == 0


@pytest.mark.parametrize("restart_collector", [False, True], ids=["store", "store+collector"])
def test_log_store_outage_loses_nothing(
    collector: Collector, log_store: LogStore, restart_collector: bool
) -> None:
    """Kill VictoriaLogs, send N records, (kill and restart the Collector,) restart the
    store on its port and data dir: all N arrive, each once, none counted as failed."""
    run = uuid.uuid4().hex[:12]
    app = App(collector, f"outage-{run[:6]}")
    try:
        log_store.kill()
        send_numbered(app, run, OUTAGE_RECORDS)
        wait_queued(collector, OUTAGE_RECORDS)
        # While the store is away the queue does not drain: what StoreNotAccepting
        # watches (compose/prometheus/rules/pipeline-alerts.yml).
        time.sleep(3)
        assert collector.metric("otelcol_exporter_queue_size", LOGS_EXPORTER) > 0
        if restart_collector:
            collector.kill()
            collector.start()
            # The restarted Collector found the queue on disk and retries it.
            wait_for(
                lambda: collector.metric("otelcol_exporter_queue_size", LOGS_EXPORTER) > 0,
                30,
                f"the restarted Collector to load its queue\n{collector.log_tail()}",
            )
        log_store.start()
        assert_all_arrive(log_store, run, OUTAGE_RECORDS, collector)
        wait_for(
            lambda: collector.metric("otelcol_exporter_queue_size", LOGS_EXPORTER) == 0,
            30,
            "the logs queue to drain",
        )
    finally:
        app.close()


# --- exemplars: a histogram's bucket names the trace, Prometheus keeps it -------------------


@pytest.fixture
def prometheus(collector: Collector, tmp_path: Path) -> Iterator[str]:
    """Debian's Prometheus with exemplar storage, running compose's `otel-collector` job
    (honor_labels and all) against this Collector's prometheus exporter."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus not found: apt-get install prometheus", pytrace=False)
    shipped = yaml.safe_load((find_compose_dir() / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in shipped["scrape_configs"] if j["job_name"] == "otel-collector"]
    job["static_configs"] = [{"targets": [collector.exporter_address]}]
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump({"global": {"scrape_interval": "1s"}, "scrape_configs": [job]})
    )
    (port,) = process.free_ports(1)
    compose = yaml.safe_load((find_compose_dir() / "docker-compose.yml").read_text())
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
    collector: Collector, jaeger_store: JaegerUnderTest, prometheus: str
) -> None:
    """Recorded inside a sampled span, the bucket's exemplar carries the span's trace id
    through OTLP, the Collector's OpenMetrics exporter and Prometheus' exemplar storage."""
    service = f"exemplars-{uuid.uuid4().hex[:8]}"
    metric = "shop_request_duration_seconds"
    app = App(collector, service)
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{collector.otlp_http}/v1/metrics"),
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
            f"an exemplar of trace {trace_id} in Prometheus\n{collector.log_tail()}",
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
