"""The real otel-tdd Collector, really started: config accepted, data in, data out.

The binary comes from ``OTELCOL_BIN`` (the test command sets it from
``otel-tdd collector path``) or the build cache. A missing binary is an error,
not a skip: a green run must mean the Collector was exercised.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

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

from otel_tdd.stack.collector import collector_binary, collector_env, find_config

pytestmark = pytest.mark.integration

T = TypeVar("T")

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


# --- fixture: a collector on free loopback ports ----------------------------------


@dataclass
class RunningCollector:
    """A started Collector and the addresses the tests talk to."""

    proc: subprocess.Popen[bytes]
    file_dir: Path
    log_path: Path
    otlp_http: str
    prometheus: str
    telemetry: str
    health: str

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def free_ports(count: int) -> list[int]:
    """Ports the kernel says are free; held open together so they are distinct."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def wait_for(
    probe: Callable[[], T | None], timeout: float, what: str, col: RunningCollector | None = None
) -> T:
    """Poll ``probe`` until it returns something truthy; fail with context if it never does."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if col is not None and col.proc.poll() is not None:
            pytest.fail(
                f"collector exited ({col.proc.returncode}) while waiting for {what}:\n"
                f"{col.log_tail()}"
            )
        try:
            result = probe()
            if result:
                return result
        except (OSError, ValueError) as exc:  # not up yet, or half-written file
            last_error = exc
        time.sleep(0.2)
    tail = f"\ncollector log:\n{col.log_tail()}" if col else ""
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last error: {last_error}){tail}")


def start_collector(tmp: Path, config: Path | None = None) -> RunningCollector:
    """Start the real binary with every endpoint on a free 127.0.0.1 port; wait for health."""
    grpc, http, prom, health, telemetry = free_ports(5)
    file_dir = tmp / "otelcol-data"
    env = collector_env(
        {
            "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc}",
            "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http}",
            "OTELCOL_PROMETHEUS_ENDPOINT": f"127.0.0.1:{prom}",
            "OTELCOL_HEALTH_ENDPOINT": f"127.0.0.1:{health}",
            "OTELCOL_TELEMETRY_HOST": "127.0.0.1",
            "OTELCOL_TELEMETRY_PORT": str(telemetry),
            "OTELCOL_FILE_DIR": str(file_dir),
        }
    )
    log_path = tmp / "otelcol.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(collector_binary()), f"--config={config or find_config()}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp,
        )
    col = RunningCollector(
        proc=proc,
        file_dir=file_dir,
        log_path=log_path,
        otlp_http=f"http://127.0.0.1:{http}",
        prometheus=f"http://127.0.0.1:{prom}/metrics",
        telemetry=f"http://127.0.0.1:{telemetry}/metrics",
        health=f"http://127.0.0.1:{health}/",
    )
    try:
        wait_for(lambda: http_get(col.health)[0] == 200, STARTUP_TIMEOUT, "health_check", col)
    except BaseException:
        stop_collector(col)
        raise
    return col


def stop_collector(col: RunningCollector) -> None:
    """SIGTERM by PID (the Collector flushes and exits), SIGKILL only if it hangs."""
    if col.proc.poll() is None:
        col.proc.terminate()
        try:
            col.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            col.proc.kill()
            col.proc.wait(timeout=5)


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCollector]:
    col = start_collector(tmp_path_factory.mktemp("collector"))
    yield col
    stop_collector(col)


# --- sending with the real Python SDK over OTLP/HTTP ---------------------------------


@dataclass
class Sent:
    service: str
    trace_id: str
    span_name: str
    log_body: str


@pytest.fixture(scope="module")
def sent(collector: RunningCollector) -> Sent:
    """One span, one log record and two metrics, exported the way an app would."""
    service = f"coltest-{uuid.uuid4().hex[:8]}"
    resource = Resource.create({"service.name": service})
    base = collector.otlp_http

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


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def service_of(resource_entry: dict[str, Any]) -> str | None:
    for attr in resource_entry.get("resource", {}).get("attributes", []):
        if attr["key"] == "service.name":
            return str(attr["value"].get("stringValue"))
    return None


def spans_of(col: RunningCollector, service: str) -> list[dict[str, Any]]:
    return [
        span
        for export in read_jsonl(col.file_dir / "traces.jsonl")
        for rs in export["resourceSpans"]
        if service_of(rs) == service
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
    ]


def logs_of(col: RunningCollector, service: str) -> list[dict[str, Any]]:
    return [
        rec
        for export in read_jsonl(col.file_dir / "logs.jsonl")
        for rl in export["resourceLogs"]
        if service_of(rl) == service
        for sl in rl["scopeLogs"]
        for rec in sl["logRecords"]
    ]


def metric_names_of(col: RunningCollector, service: str) -> set[str]:
    return {
        m["name"]
        for export in read_jsonl(col.file_dir / "metrics.jsonl")
        for rm in export["resourceMetrics"]
        if service_of(rm) == service
        for sm in rm["scopeMetrics"]
        for m in sm["metrics"]
    }


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


def test_binary_validate_accepts_shipped_config() -> None:
    result = subprocess.run(
        [str(collector_binary()), "validate", f"--config={find_config()}"],
        capture_output=True,
        text=True,
        env=collector_env(),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_span_lands_in_traces_file_without_secret_attributes(
    collector: RunningCollector, sent: Sent
) -> None:
    spans = wait_for(
        lambda: spans_of(collector, sent.service), 15, "span in traces.jsonl", collector
    )
    span = spans[0]
    assert span["name"] == sent.span_name
    assert span["traceId"] == sent.trace_id
    keys = {a["key"] for a in span["attributes"]}
    assert "epic.id" in keys
    assert "password" not in keys, "attributes/secrets must delete secret-like keys"


def test_log_record_lands_in_logs_file_with_trace_context(
    collector: RunningCollector, sent: Sent
) -> None:
    records = wait_for(lambda: logs_of(collector, sent.service), 15, "log in logs.jsonl", collector)
    record = next(r for r in records if r["body"].get("stringValue") == sent.log_body)
    assert record["traceId"] == sent.trace_id


def test_metrics_land_in_metrics_file(collector: RunningCollector, sent: Sent) -> None:
    wanted = {"tdd_epics_created_total", "tdd_response_time_seconds"}
    wait_for(
        lambda: metric_names_of(collector, sent.service) >= wanted,
        15,
        "app metrics in metrics.jsonl",
        collector,
    )


def test_prometheus_exporter_keeps_app_metric_names(
    collector: RunningCollector, sent: Sent
) -> None:
    counter = wait_for(
        lambda: series(collector.prometheus, "tdd_epics_created_total", job=sent.service),
        15,
        "tdd_epics_created_total on the prometheus exporter",
        collector,
    )
    assert [value for _, value in counter] == [2.0]
    assert counter[0][0]["status"] == "ok"
    assert not series(collector.prometheus, "tdd_epics_created_total_total")

    for suffix, expected in (("_count", 1.0), ("_sum", 0.25)):
        found = series(collector.prometheus, f"tdd_response_time_seconds{suffix}", job=sent.service)
        assert [value for _, value in found] == [expected], suffix
    buckets = series(collector.prometheus, "tdd_response_time_seconds_bucket", job=sent.service)
    assert any(lab["le"] == "+Inf" and value == 1.0 for lab, value in buckets)


def test_spanmetrics_connector_exposes_red_series(collector: RunningCollector, sent: Sent) -> None:
    labels = {"service_name": sent.service, "span_name": sent.span_name}
    # The connector's first flush emits calls=0 (a start point for rate()); the
    # count shows on the next flush, metrics_flush_interval (5s) later.
    calls = wait_for(
        lambda: [
            v
            for _, v in series(collector.prometheus, "traces_span_metrics_calls_total", **labels)
            if v >= 1
        ],
        25,
        "traces_span_metrics_calls_total >= 1",
        collector,
    )
    assert calls == [1.0]
    count = series(
        collector.prometheus, "traces_span_metrics_duration_milliseconds_count", **labels
    )
    assert [v for _, v in count] == [1.0]
    assert series(
        collector.prometheus, "traces_span_metrics_duration_milliseconds_bucket", **labels
    )


def test_collector_exposes_its_own_metrics_for_alert_rules(
    collector: RunningCollector, sent: Sent
) -> None:
    wait_for(lambda: spans_of(collector, sent.service), 15, "span exported", collector)
    names = {name for name, _, _ in scrape(collector.telemetry)}
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
    col = start_collector(tmp_path)
    pid = col.proc.pid
    stop_collector(col)
    assert col.proc.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert "Shutdown complete" in col.log_path.read_text(), col.log_tail()
