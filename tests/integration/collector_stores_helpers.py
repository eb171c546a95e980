"""Our Collector in front of stores we can kill: the processes and an app.

Used by collector_stores_fixtures.py (the fixtures) and the tests of
test_collector_stores.py and test_collector_store_outage.py. The Collector runs
collector/config.yaml as shipped (no files overlay) with its store variables
pointing at a VictoriaLogs and a Jaeger of ours; each process is started by us,
killed or stopped by its pid, and restarted on the same ports and data dir, so
an outage is a real one.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from stores_helpers import Running, start

from otel_tdd.stack import process
from otel_tdd.stack.collector import collector_binary, collector_env, find_config
from otel_tdd.stack.store_configs import (
    JaegerPorts,
    jaeger_urls,
    load_jaeger_config,
    victoria_logs_args,
    victoria_logs_url,
    write_jaeger_config,
)

# --- the processes -----------------------------------------------------------------


class _Killable:
    """A process of the test's own: killed (a crash) or stopped (politely) by its pid."""

    running: Running | None

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
class LogStore(_Killable):
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


@dataclass
class TraceStore(_Killable):
    """A Jaeger of our own (Badger on disk): killed and restarted on the same ports and data."""

    binary: Path
    base: Path
    ports: JaegerPorts = field(default_factory=lambda: JaegerPorts(*process.free_ports(6)))
    running: Running | None = None

    @property
    def urls(self) -> dict[str, str]:
        return jaeger_urls(self.ports, load_jaeger_config())

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        config = write_jaeger_config(self.base / "config.yaml", self.ports, self.base / "data")
        argv = [str(self.binary), f"--config={config}"]
        self.running = start(argv, self.base / "jaeger.log", self.urls["health"], "Jaeger")


@dataclass
class Collector(_Killable):
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


# --- the app -----------------------------------------------------------------------


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
