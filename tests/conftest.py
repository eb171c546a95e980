"""Shared fixtures: the real Collector and the real local stack, on free 127.0.0.1 ports.

* ``collector`` (per test; ``module_collector`` per module): our Collector build,
  started through ``LocalStack`` with only the Collector; read what it wrote with
  ``spans()``, ``logs()`` and ``metrics()``, poll with ``wait_for``.
* ``stack`` (per module): Collector, Prometheus and Alertmanager; ``query(promql)``
  asks Prometheus.

A missing binary FAILS these fixtures (with the install line): a green run must
mean the real parts ran. Everything is stopped by pid at teardown, and a
session-wide check stops (and reports) anything a broken fixture left behind.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from otel_tdd.stack import process
from otel_tdd.stack.collector import find_config
from otel_tdd.stack.local import LocalStack, StackError
from otel_tdd.stack.otlp_files import read_logs, read_metrics, read_spans

T = TypeVar("T")

_RETRYABLE = (OSError, ValueError, KeyError, IndexError, AssertionError, StackError)


def _poll(
    predicate: Callable[[], T],
    timeout_s: float,
    what: str,
    *,
    alive: Callable[[], str | None],
    context: Callable[[], str],
) -> T:
    """Call ``predicate`` until it returns something truthy, or fail with ``context()``.

    ``alive()`` returns None while the watched processes run, else why not: no
    point waiting out the timeout for a Collector that has exited. Exceptions in
    the predicate (a half-written file, a 503 during startup, an ``assert``) count
    as "not yet" and the last one is reported.
    """
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while True:
        dead = alive()
        if dead:
            pytest.fail(f"{dead} while waiting for {what}\n{context()}", pytrace=False)
        try:
            result = predicate()
            if result:
                return result
        except _RETRYABLE as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            pytest.fail(
                f"timed out after {timeout_s}s waiting for {what}"
                f" (last error: {last_error!r})\n{context()}",
                pytrace=False,
            )
        time.sleep(0.2)


def _up_or_fail(stack: LocalStack) -> None:
    """Start ``stack``; a missing binary or a failed start FAILS the test, never skips it."""
    try:
        stack.up()
        return
    except StackError as exc:
        error = str(exc)
    stack.down()
    pytest.fail(f"this test needs the real stack ({stack.state_dir}): {error}", pytrace=False)


def files_collector_config(state_dir: Path) -> Path:
    """collector/config.yaml with the JSONL files overlay (collector/files.yaml) merged in.

    These fixtures read what the Collector wrote to files, and StackConfig takes one
    config file, so the two are merged here as the Collector merges two --config
    files: maps key by key, lists replaced. Written beside ``state_dir``.
    """

    def merge(base: Any, over: Any) -> Any:
        if isinstance(base, dict) and isinstance(over, dict):
            return {**base, **{k: merge(base.get(k), v) for k, v in over.items()}}
        return over

    config = find_config()
    merged = merge(
        yaml.safe_load(config.read_text()),
        yaml.safe_load((config.parent / "files.yaml").read_text()),
    )
    path = state_dir.with_name(f"{state_dir.name}-collector.yaml")
    path.write_text(yaml.safe_dump(merged, sort_keys=False))
    return path


class CollectorUnderTest:
    """A running Collector (our build) and what it wrote to its file exporters."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.otlp_http_endpoint = stack.otlp_http_endpoint
        self.otlp_grpc_endpoint = stack.otlp_grpc_endpoint
        self.prometheus_exporter_url = stack.collector_metrics_url
        self.telemetry_url = stack.collector_telemetry_url
        self.health_url = stack.collector_health_url
        self.file_dir: Path = stack.file_dir
        self.log_path = stack.log_path("collector")
        self.pid = stack.pids["collector"]

    def spans(self) -> list[dict[str, Any]]:
        """Spans in traces.jsonl: ``{name, trace_id, span_id, parent_span_id, attributes,
        status_code ("UNSET"/"OK"/"ERROR"), resource, events, ...}``."""
        return read_spans(self.file_dir)

    def logs(self) -> list[dict[str, Any]]:
        """Log records in logs.jsonl: ``{body, trace_id, span_id, attributes,
        severity_text, severity_number, resource, ...}``."""
        return read_logs(self.file_dir)

    def metrics(self) -> list[dict[str, Any]]:
        """Metric data points in metrics.jsonl: ``{name, type, attributes, value}`` for
        sums and gauges, ``{..., count, sum, bucket_counts, explicit_bounds}`` for
        histograms (one point per export: the last of a series is its current value)."""
        return read_metrics(self.file_dir)

    def log_tail(self, lines: int = 40) -> str:
        return process.tail(self.log_path, lines)

    def wait_for(self, predicate: Callable[[], T], timeout_s: float = 15.0, what: str = "") -> T:
        """Poll ``predicate`` until truthy; on timeout fail with the Collector's log tail."""
        return _poll(
            predicate,
            timeout_s,
            what or getattr(predicate, "__name__", "condition"),
            alive=lambda: (
                None if process.is_running(self.pid) else f"the Collector (pid {self.pid}) exited"
            ),
            context=lambda: f"--- collector log ({self.log_path}) ---\n{self.log_tail()}",
        )


class StackUnderTest(LocalStack):
    """``LocalStack`` plus test helpers that fail with every component's log tail."""

    def log_tails(self, lines: int = 25) -> str:
        return "\n".join(
            f"--- {name} log ---\n{process.tail(self.log_path(name), lines)}"
            for name in self.config.components
        )

    def query_value(self, promql: str) -> float | None:
        """The sum of an instant vector's values; None when it is empty."""
        result = self.query(promql)
        if not result:
            return None
        return sum(float(series["value"][1]) for series in result)

    def wait_for(self, predicate: Callable[[], T], timeout_s: float = 30.0, what: str = "") -> T:
        def dead() -> str | None:
            gone = [name for name, pid in self.pids.items() if not process.is_running(pid)]
            return f"{', '.join(gone)} exited" if gone else None

        return _poll(
            predicate,
            timeout_s,
            what or getattr(predicate, "__name__", "condition"),
            alive=dead,
            context=self.log_tails,
        )


def _collector_in(state_dir: Path) -> Iterator[CollectorUnderTest]:
    stack = LocalStack(
        state_dir,
        free_ports=True,
        components=("collector",),
        collector_config=files_collector_config(state_dir),
    )
    _up_or_fail(stack)
    try:
        yield CollectorUnderTest(stack)
    finally:
        stack.down()


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorUnderTest]:
    """Our Collector on free 127.0.0.1 ports, its file output in ``file_dir``; one per test."""
    yield from _collector_in(tmp_path / "collector-stack")


@pytest.fixture(scope="module")
def module_collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorUnderTest]:
    """The same as ``collector``, shared by a module: data sent once, checked many ways."""
    yield from _collector_in(tmp_path_factory.mktemp("collector-stack"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackUnderTest]:
    """Collector, Prometheus and Alertmanager on free 127.0.0.1 ports; one per test module."""
    state_dir = tmp_path_factory.mktemp("stack")
    running = StackUnderTest(
        state_dir, free_ports=True, collector_config=files_collector_config(state_dir)
    )
    _up_or_fail(running)
    try:
        yield running
    finally:
        running.down()


# The live dashboard proofs' fixtures (tests/e2e/test_dashboards_live.py and
# test_remote_write_vm.py). Here and not in a tests/e2e/conftest.py: a second module
# named ``conftest`` replaces this one in sys.modules, and the tests' runtime
# ``from conftest import StackUnderTest`` then fails.


@pytest.fixture(scope="module")
def node_exporter(stack: StackUnderTest) -> Iterator[str]:
    """prometheus-node-exporter (Debian's, as in docker-compose), scraped by compose's job."""
    from dashboard_workload import running_node_exporter  # tests/e2e, on sys.path there

    with running_node_exporter(stack) as address:
        yield address


@pytest.fixture(scope="module")
def workload(
    stack: StackUnderTest, node_exporter: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """The example app's demo once, then ``serve`` under load plus the rarer events."""
    from dashboard_workload import running_workload

    with running_workload(stack, tmp_path_factory.mktemp("app"), "tdd-dash") as running:
        yield running


@pytest.fixture(scope="session", autouse=True)
def _no_process_left_behind() -> Iterator[None]:
    """Safety net: stop, by pid, anything a fixture or test started and did not stop."""
    yield
    leftovers = process.stop_children()
    if leftovers:
        warnings.warn(
            f"stopped processes left running by tests: {leftovers}", RuntimeWarning, stacklevel=1
        )


# The compatibility matrix (tests/compat/): a test records its row with
# ``compat_row(...)``; only rows of passed tests are kept. Every test asking for
# ``compat_row`` gets an outcome, saved at the end with the rows, the ids collected and the
# exit status: compat_matrix.main() refuses to render a failed or partial run.
_COMPAT_ROWS: list[Any] = []
_COMPAT_OUTCOMES: dict[str, str] = {}
_COMPAT_COLLECTED: list[str] = []


@pytest.fixture
def compat_row(request: pytest.FixtureRequest) -> Callable[..., None]:
    from compat_matrix import Row, installed_version, instrumentation_of

    def record(
        library: str,
        scenario: str,
        proven: list[str],
        *,
        distribution: str | None = None,
        notes: list[str] | None = None,
    ) -> None:
        row = Row(
            library=library,
            scenario=scenario,
            proven=list(proven),
            version=installed_version(distribution or library),
            test=request.node.nodeid,
            notes=list(notes or []),
            instrumentation=instrumentation_of(library),
        )
        request.node.stash.setdefault(_COMPAT_KEY, []).append(row)

    return record


_COMPAT_KEY = pytest.StashKey[list[Any]]()


def _uses_compat_row(item: pytest.Item) -> bool:
    return "compat_row" in getattr(item, "fixturenames", ())


def pytest_collection_finish(session: pytest.Session) -> None:
    _COMPAT_COLLECTED.extend(i.nodeid for i in session.items if _uses_compat_row(i))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if not _uses_compat_row(item):
        return
    # Passed only if setup, call and teardown all passed; the first failure or skip stays.
    if report.failed or report.skipped:
        _COMPAT_OUTCOMES.setdefault(item.nodeid, report.outcome)
    elif report.when == "teardown" and item.nodeid not in _COMPAT_OUTCOMES:
        _COMPAT_OUTCOMES[item.nodeid] = "passed"
        _COMPAT_ROWS.extend(item.stash.get(_COMPAT_KEY, []))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _COMPAT_COLLECTED:
        from compat_matrix import Results, save

        save(
            Results(int(exitstatus), list(_COMPAT_COLLECTED), dict(_COMPAT_OUTCOMES), _COMPAT_ROWS)
        )
