"""The fixtures of the Collector-in-front-of-the-stores tests (a pytest plugin).

``pytest_plugins`` of test_collector_stores.py and test_collector_store_outage.py,
on top of stores_fixtures.py (``store_binaries``): a VictoriaLogs and a Jaeger per
test that a test may kill, the module's Jaeger it does not, and our Collector in
front of them (helpers: collector_stores_helpers.py). Everything is stopped by pid.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from collector_stores_helpers import Collector, LogStore, TraceStore
from stores_helpers import JaegerUnderTest, running_jaeger

from otel_tdd.stack import process


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
def trace_store(store_binaries: dict[str, Path], tmp_path: Path) -> Iterator[TraceStore]:
    store = TraceStore(store_binaries["jaeger"], tmp_path / "jaeger")
    store.start()
    try:
        yield store
    finally:
        store.stop()


@pytest.fixture
def collector_for(log_store: LogStore, tmp_path: Path) -> Iterator[Callable[[str], Collector]]:
    """Start our Collector sending logs to ``log_store`` and traces to the given host:port."""
    started: list[Collector] = []

    def make(traces_store: str) -> Collector:
        grpc, http, exporter, health, telemetry = process.free_ports(5)
        env = {
            "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc}",
            "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http}",
            "OTELCOL_PROMETHEUS_ENDPOINT": f"127.0.0.1:{exporter}",
            "OTELCOL_HEALTH_ENDPOINT": f"127.0.0.1:{health}",
            "OTELCOL_TELEMETRY_HOST": "127.0.0.1",
            "OTELCOL_TELEMETRY_PORT": str(telemetry),
            "OTELCOL_LOGS_STORE_ENDPOINT": log_store.url,
            "OTELCOL_TRACES_STORE_ENDPOINT": traces_store,
            "OTELCOL_QUEUE_DIR": str(tmp_path / "queue"),
            # Nothing may land in files: config.yaml has no file exporter left.
            "OTELCOL_FILE_DIR": str(tmp_path / "files"),
        }
        running = Collector(tmp_path, env)
        started.append(running)
        running.start()
        return running

    try:
        yield make
    finally:
        for running in started:
            running.stop()


@pytest.fixture
def store_collector(
    collector_for: Callable[[str], Collector], jaeger_store: JaegerUnderTest
) -> Collector:
    """Our Collector in front of this test's VictoriaLogs and the module's Jaeger."""
    return collector_for(jaeger_store.otlp_grpc)
