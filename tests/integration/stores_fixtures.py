"""The trace and log stores under test, and an app whose traces they hold, as fixtures.

A pytest plugin (``pytest_plugins``) of tests/integration/test_stores.py and
test_stores_exemplars.py, session-scoped so both share one Jaeger, one
VictoriaLogs and one run of the app (helpers: stores_helpers.py). VictoriaLogs
and Jaeger v2 are built (cached) by ``otel-tdd stores build``'s own function and
started on free 127.0.0.1 ports in temp dirs, stopped by pid. A missing Go or a
failed build FAILS (never skips).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from stores_helpers import App, JaegerUnderTest, run_app, running_jaeger, start, wait_for

from otel_tdd import stores_query
from otel_tdd.stack import process
from otel_tdd.stack.store_configs import (
    victoria_logs_args,
    victoria_logs_url,
)
from otel_tdd.stack.stores import StoreBuildError, build_store


@pytest.fixture(scope="session")
def store_binaries() -> dict[str, Path]:
    """Both stores built through `otel-tdd stores build` (a cached no-op once built)."""
    built = {}
    for name in ("victoria-logs", "jaeger"):
        try:
            built[name] = build_store(name, progress=lambda line: print(line, file=sys.stderr))
        except StoreBuildError as exc:
            pytest.fail(f"cannot build {name}: {exc}", pytrace=False)
    return built


@pytest.fixture(scope="session")
def victoria_logs(
    store_binaries: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    base = tmp_path_factory.mktemp("victoria-logs")
    (port,) = process.free_ports(1)
    argv = victoria_logs_args(store_binaries["victoria-logs"], port, base / "data")
    url = victoria_logs_url(port)
    running = start(argv, base / "victoria-logs.log", f"{url}/health", "VictoriaLogs")
    yield url
    process.stop(running.pid, running.argv)


@pytest.fixture(scope="session")
def jaeger(
    store_binaries: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JaegerUnderTest]:
    with running_jaeger(store_binaries["jaeger"], tmp_path_factory.mktemp("jaeger")) as running:
        yield running


@pytest.fixture(scope="session")
def app(jaeger: JaegerUnderTest, victoria_logs: str) -> App:
    """The app's traces, once both stores answer with all of them."""
    made = run_app(jaeger, victoria_logs)
    for trace in (made.slow_failed, made.fast_ok):
        wait_for(
            lambda t=trace: (
                len(stores_query.fetch_trace(jaeger.query_url, t.trace_id)) >= len(t.span_names)
            ),
            30,
            f"Jaeger to have trace {trace.trace_id}",
        )
        query = stores_query.logsql(trace_id=trace.trace_id)
        wait_for(
            lambda t=trace, q=query: (
                len(stores_query.fetch_logs(victoria_logs, q)) >= len(t.messages)
            ),
            30,
            f"VictoriaLogs to have the records of {trace.trace_id}",
        )
    return made
