"""Helpers of the stores' integration tests: the app whose traces the stores hold,
the real command line, and waiting. The fixtures are in stores_fixtures.py.

The app's spans and log records go straight to Jaeger and VictoriaLogs over OTLP
from the Python SDK (the Collector's export to the stores is the stack
integration's part).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_tdd import stores_query
from otel_tdd.stack import process
from otel_tdd.stack.store_configs import (
    JaegerPorts,
    jaeger_urls,
    load_jaeger_config,
    write_jaeger_config,
)

T = TypeVar("T")
SERVICE = "shop"
STREAM_FIELDS = "service.name,deployment.environment"
SELF_EXPORT_DELAY_MS = 500  # how often a self-tracing Jaeger would export its spans
# Where the real run's output is kept for docs/stores.md (see save_walk).
WALK_DIR = Path(__file__).resolve().parents[2] / "build" / "stores-walk"


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (OSError, ValueError, stores_query.StoreQueryError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


# --- the stores ----------------------------------------------------------------------


@dataclass
class Running:
    pid: int
    argv: list[str]
    log: Path


def start(
    argv: list[str], log: Path, ready_url: str, what: str, env: dict[str, str] | None = None
) -> Running:
    proc = process.start(argv, log_path=log, env=env)
    ok = process.wait_until(
        lambda: process.http_ok(ready_url), timeout=60, alive=lambda: proc.poll() is None
    )
    if not ok:
        process.stop(proc.pid, argv)
        pytest.fail(f"{what} did not become ready at {ready_url}:\n{process.tail(log)}")
    return Running(proc.pid, argv, log)


@dataclass
class JaegerUnderTest:
    query_url: str
    otlp_http: str
    metrics_url: str
    otlp_grpc: str = ""  # host:port, what a Collector's otlp_grpc exporter takes


# --- the app ---------------------------------------------------------------------------


@contextmanager
def running_jaeger(
    binary: Path, base: Path, source: dict[str, Any] | None = None
) -> Iterator[JaegerUnderTest]:
    """A Jaeger from the shipped config (or ``source``), stopped by pid on exit.

    Were it to trace itself (``enable_tracing``), it would export its own spans to its
    own OTLP port (the SDK's OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, every 0.5 s), so a
    ``jaeger`` service would show in its own store: the self-tracing check can fail.
    """
    ports = JaegerPorts(*process.free_ports(6))
    config = write_jaeger_config(base / "config.yaml", ports, base / "data", source)
    urls = jaeger_urls(ports, source or load_jaeger_config())
    argv = [str(binary), f"--config={config}"]
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://{urls['otlp_grpc']}",
        "OTEL_BSP_SCHEDULE_DELAY": str(SELF_EXPORT_DELAY_MS),
    }
    running = start(argv, base / "jaeger.log", urls["health"], "Jaeger", env=env)
    try:
        yield JaegerUnderTest(urls["query"], urls["otlp_http"], urls["metrics"], urls["otlp_grpc"])
    finally:
        process.stop(running.pid, running.argv)


@dataclass
class AppTrace:
    trace_id: str
    span_names: list[str]
    messages: list[str]
    error_message: str


@dataclass
class App:
    slow_failed: AppTrace  # ~300 ms, one span fails
    fast_ok: AppTrace  # a few ms, all OK


def run_app(jaeger: JaegerUnderTest, logs_url: str) -> App:
    """A shop handling two requests: each a server span with nested work and log records."""
    resource = Resource.create({"service.name": SERVICE, "deployment.environment": "test"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{jaeger.otlp_http}/v1/traces"))
    )
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(
            OTLPLogExporter(
                endpoint=f"{logs_url}/insert/opentelemetry/v1/logs",
                headers={"VL-Stream-Fields": STREAM_FIELDS},
            )
        )
    )
    log = logging.getLogger("tests.stores.shop")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    handler = LoggingHandler(logger_provider=logger_provider)
    log.addHandler(handler)
    tracer = tracer_provider.get_tracer("tests.stores")

    def request(order: int, fail: bool) -> AppTrace:
        messages = []

        def say(level: int, message: str) -> None:
            messages.append(message)
            log.log(level, message)

        error = f"card declined for order {order}"
        with tracer.start_as_current_span(f"POST /orders/{order}", kind=SpanKind.SERVER) as root:
            say(logging.INFO, f"order {order} received")
            with tracer.start_as_current_span("load cart"):
                with tracer.start_as_current_span("SELECT cart_items", kind=SpanKind.CLIENT):
                    time.sleep(0.005)
                say(logging.DEBUG, f"cart of order {order} has 3 items")
            with tracer.start_as_current_span("charge card", kind=SpanKind.CLIENT) as charge:
                if fail:
                    time.sleep(0.3)
                    say(logging.WARNING, f"payment provider slow for order {order}")
                    charge.set_status(Status(StatusCode.ERROR, "declined"))
                    say(logging.ERROR, error)
                else:
                    say(logging.INFO, f"order {order} charged")
            trace_id = format(root.get_span_context().trace_id, "032x")
        names = [f"POST /orders/{order}", "load cart", "SELECT cart_items", "charge card"]
        return AppTrace(trace_id, names, messages, error)

    try:
        slow = request(41, fail=True)
        fast = request(42, fail=False)
    finally:
        assert tracer_provider.force_flush(10_000), "spans not exported"
        assert logger_provider.force_flush(10_000), "log records not exported"
        tracer_provider.shutdown()
        logger_provider.shutdown()
        log.removeHandler(handler)
    return App(slow, fast)


def otel_tdd(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real command line (same interpreter), with no store URL from the caller's env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_TDD_")}
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "otel_tdd.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def save_walk(name: str, text: str) -> None:
    """Keep the real output for docs/stores.md (build/ is not committed)."""
    WALK_DIR.mkdir(parents=True, exist_ok=True)
    (WALK_DIR / f"{name}.txt").write_text(text, encoding="utf-8")
