"""The real otel-tdd Collector, really started: config accepted, data in, data out.

The binary comes from ``OTELCOL_BIN`` (the test command sets it from
``otel-tdd collector path``) or the build cache. A missing binary is an error,
not a skip: a green run must mean the Collector was exercised.
"""

from __future__ import annotations

import logging
import re
import subprocess
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_tdd.stack import process
from otel_tdd.stack.collector import collector_binary, collector_env, find_config
from otel_tdd.stack.local import LocalStack

if TYPE_CHECKING:
    from conftest import CollectorUnderTest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def collector(module_collector: CollectorUnderTest) -> CollectorUnderTest:
    """One Collector (tests/conftest.py) for the module: the data is sent once, below."""
    return module_collector


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


# --- sending with the real Python SDK over OTLP/HTTP ---------------------------------


@dataclass
class Sent:
    service: str
    trace_id: str
    span_name: str
    log_body: str


@pytest.fixture(scope="module")
def sent(collector: CollectorUnderTest) -> Sent:
    """One span, one log record and two metrics, exported the way an app would."""
    service = f"coltest-{uuid.uuid4().hex[:8]}"
    resource = Resource.create({"service.name": service})
    base = collector.otlp_http_endpoint

    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces"))
    )
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{base}/v1/logs"))
    )
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{base}/v1/metrics"), export_interval_millis=3_600_000
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])

    meter = meter_provider.get_meter("coltest")
    meter.create_counter("tdd_epics_created_total", unit="1").add(2, {"status": "ok"})
    meter.create_histogram("tdd_response_time_seconds", unit="s").record(0.25, {"page": "home"})

    handler = LoggingHandler(logger_provider=logger_provider)
    log = logging.getLogger(f"coltest.{service}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    log_body = f"epic created {uuid.uuid4().hex}"
    span_name = "create_epic"
    with tracer_provider.get_tracer("coltest").start_as_current_span(
        span_name, attributes={"epic.id": "e-1", "password": "hunter2"}
    ) as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        log.info(log_body)

    try:
        for provider in (tracer_provider, logger_provider, meter_provider):
            assert provider.force_flush(10_000), f"{type(provider).__name__} did not flush"
    finally:
        log.removeHandler(handler)
        for provider in (tracer_provider, logger_provider, meter_provider):
            provider.shutdown()
    return Sent(service=service, trace_id=trace_id, span_name=span_name, log_body=log_body)


# --- reading what came out ---------------------------------------------------------------


def spans_of(col: CollectorUnderTest, service: str) -> list[dict[str, Any]]:
    return [span for span in col.spans() if span["service_name"] == service]


def logs_of(col: CollectorUnderTest, service: str) -> list[dict[str, Any]]:
    return [record for record in col.logs() if record["service_name"] == service]


def metric_names_of(col: CollectorUnderTest, service: str) -> set[str]:
    return {point["name"] for point in col.metrics() if point["service_name"] == service}


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    """Prometheus text exposition -> (name, labels, value) samples."""
    status, body = http_get(url)
    assert status == 200, f"{url} answered {status}"
    samples = []
    for line in body.splitlines():
        match = _SAMPLE.match(line)
        if match and not line.startswith("#"):
            labels = dict(_LABEL.findall(match.group(2) or ""))
            samples.append((match.group(1), labels, float(match.group(3))))
    return samples


def series(url: str, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    return [
        (lab, value)
        for sample_name, lab, value in scrape(url)
        if sample_name == name and all(lab.get(k) == v for k, v in labels.items())
    ]


# --- the behaviours ------------------------------------------------------------------------


SHIPPED_CONFIGS = [
    ["config.yaml"],
    ["config.yaml", "files.yaml"],
    ["gateway.yaml"],
    ["gateway.yaml", "gateway-files.yaml"],
    ["agent.yaml"],
    ["agent.yaml", "agent-k8s.yaml"],
]


def test_every_shipped_config_and_overlay_is_validated_below() -> None:
    shipped = {p.name for p in find_config().parent.glob("*.yaml")} - {"manifest.yaml"}
    assert shipped == {name for configs in SHIPPED_CONFIGS for name in configs}


@pytest.mark.parametrize("configs", SHIPPED_CONFIGS, ids="+".join)
def test_binary_validate_accepts_shipped_config(configs: list[str]) -> None:
    """Each shipped config, and each overlay merged over its base, as the binary reads it."""
    paths = [find_config().parent / name for name in configs]
    result = subprocess.run(
        [str(collector_binary()), "validate", *(f"--config={path}" for path in paths)],
        capture_output=True,
        text=True,
        env=collector_env(),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_span_lands_in_traces_file_without_secret_attributes(
    collector: CollectorUnderTest, sent: Sent
) -> None:
    spans = collector.wait_for(
        lambda: spans_of(collector, sent.service), 15, "span in traces.jsonl"
    )
    span = spans[0]
    assert span["name"] == sent.span_name
    assert span["trace_id"] == sent.trace_id
    assert "epic.id" in span["attributes"]
    assert "password" not in span["attributes"], "attributes/secrets must delete secret-like keys"


def test_log_record_lands_in_logs_file_with_trace_context(
    collector: CollectorUnderTest, sent: Sent
) -> None:
    records = collector.wait_for(lambda: logs_of(collector, sent.service), 15, "log in logs.jsonl")
    record = next(r for r in records if r["body"] == sent.log_body)
    assert record["trace_id"] == sent.trace_id


def test_metrics_land_in_metrics_file(collector: CollectorUnderTest, sent: Sent) -> None:
    wanted = {"tdd_epics_created_total", "tdd_response_time_seconds"}
    collector.wait_for(
        lambda: metric_names_of(collector, sent.service) >= wanted,
        15,
        "app metrics in metrics.jsonl",
    )


def test_prometheus_exporter_keeps_app_metric_names(
    collector: CollectorUnderTest, sent: Sent
) -> None:
    exporter = collector.prometheus_exporter_url
    counter = collector.wait_for(
        lambda: series(exporter, "tdd_epics_created_total", job=sent.service),
        15,
        "tdd_epics_created_total on the prometheus exporter",
    )
    assert [value for _, value in counter] == [2.0]
    assert counter[0][0]["status"] == "ok"
    assert not series(exporter, "tdd_epics_created_total_total")

    for suffix, expected in (("_count", 1.0), ("_sum", 0.25)):
        found = series(exporter, f"tdd_response_time_seconds{suffix}", job=sent.service)
        assert [value for _, value in found] == [expected], suffix
    buckets = series(exporter, "tdd_response_time_seconds_bucket", job=sent.service)
    assert any(lab["le"] == "+Inf" and value == 1.0 for lab, value in buckets)


def test_spanmetrics_connector_exposes_red_series(
    collector: CollectorUnderTest, sent: Sent
) -> None:
    exporter = collector.prometheus_exporter_url
    labels = {"service_name": sent.service, "span_name": sent.span_name}
    # The connector's first flush emits calls=0 (a start point for rate()); the
    # count shows on the next flush, metrics_flush_interval (5s) later.
    calls = collector.wait_for(
        lambda: [
            v for _, v in series(exporter, "traces_span_metrics_calls_total", **labels) if v >= 1
        ],
        25,
        "traces_span_metrics_calls_total >= 1",
    )
    assert calls == [1.0]
    count = series(exporter, "traces_span_metrics_duration_milliseconds_count", **labels)
    assert [v for _, v in count] == [1.0]
    assert series(exporter, "traces_span_metrics_duration_milliseconds_bucket", **labels)


def test_collector_exposes_its_own_metrics_for_alert_rules(
    collector: CollectorUnderTest, sent: Sent
) -> None:
    collector.wait_for(lambda: spans_of(collector, sent.service), 15, "span exported")
    names = {name for name, _, _ in scrape(collector.telemetry_url)}
    for name in (
        "otelcol_receiver_accepted_spans",
        "otelcol_receiver_refused_spans",
        "otelcol_exporter_sent_spans",
        "otelcol_processor_incoming_items",
        "otelcol_processor_outgoing_items",
        "otelcol_process_uptime",
    ):
        assert name in names, f"{name} missing from {sorted(names)}"


def test_collector_stops_on_sigterm_and_is_gone(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path / "stack", free_ports=True, components=("collector",))
    stack.up()
    pid = stack.pids["collector"]
    [(name, result, stopped_pid)] = stack.down()
    assert (name, result, stopped_pid) == ("collector", process.StopResult.STOPPED, pid)
    assert not process.is_running(pid)
    log = stack.log_path("collector").read_text()
    assert "Shutdown complete" in log, log[-2000:]


def test_files_overlay_leaves_the_stores_out(collector: CollectorUnderTest, sent: Sent) -> None:
    """The fixtures' Collector runs config.yaml + files.yaml: files only, no store exporter."""
    collector.wait_for(lambda: spans_of(collector, sent.service), 15, "span exported")
    exporters = {labels.get("exporter") for _, labels, _ in scrape(collector.telemetry_url)}
    assert {"file/traces", "file/logs"} <= exporters, exporters
    assert not exporters & {"otlp_http/victorialogs", "otlp_grpc/jaeger"}, exporters
