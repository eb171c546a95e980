"""The trace and log stores, real binaries: what goes in comes back, and the CLI walk.

VictoriaLogs and Jaeger v2 are built (cached) by ``otel-tdd stores build``'s own
function and started on free 127.0.0.1 ports in temp dirs, stopped by pid. An
app of a few spans with log records inside them is sent straight to them over
OTLP from the Python SDK (the Collector's export to the stores is the stack
integration's part). Then: Jaeger has exactly those spans, VictoriaLogs exactly
those records, and ``otel-tdd trace | traces | logs | exemplars`` show them.
``exemplars`` runs against Debian's Prometheus 2.42 with exemplar storage,
scraping an OpenMetrics endpoint served here whose exemplars name our traces.
A missing Go, build or Prometheus FAILS (never skips).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
    victoria_logs_args,
    victoria_logs_url,
    write_jaeger_config,
)
from otel_tdd.stack.stores import StoreBuildError, build_store

pytestmark = pytest.mark.integration

T = TypeVar("T")
SERVICE = "shop"
STREAM_FIELDS = "service.name,deployment.environment"
# Where the real run's output is kept for docs/stores.md (see _save_walk).
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


@dataclass
class Running:
    pid: int
    argv: list[str]
    log: Path


def _start(argv: list[str], log: Path, ready_url: str, what: str) -> Running:
    proc = process.start(argv, log_path=log)
    ok = process.wait_until(
        lambda: process.http_ok(ready_url), timeout=60, alive=lambda: proc.poll() is None
    )
    if not ok:
        process.stop(proc.pid, argv)
        pytest.fail(f"{what} did not become ready at {ready_url}:\n{process.tail(log)}")
    return Running(proc.pid, argv, log)


@pytest.fixture(scope="module")
def victoria_logs(
    store_binaries: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    base = tmp_path_factory.mktemp("victoria-logs")
    (port,) = process.free_ports(1)
    argv = victoria_logs_args(store_binaries["victoria-logs"], port, base / "data")
    url = victoria_logs_url(port)
    running = _start(argv, base / "victoria-logs.log", f"{url}/health", "VictoriaLogs")
    yield url
    process.stop(running.pid, running.argv)


@dataclass
class JaegerUnderTest:
    query_url: str
    otlp_http: str
    metrics_url: str


@pytest.fixture(scope="module")
def jaeger(
    store_binaries: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JaegerUnderTest]:
    base = tmp_path_factory.mktemp("jaeger")
    ports = JaegerPorts(*process.free_ports(6))
    config = write_jaeger_config(base / "config.yaml", ports, base / "data")
    urls = jaeger_urls(ports, load_jaeger_config())
    argv = [str(store_binaries["jaeger"]), f"--config={config}"]
    running = _start(argv, base / "jaeger.log", urls["health"], "Jaeger")
    yield JaegerUnderTest(urls["query"], urls["otlp_http"], urls["metrics"])
    process.stop(running.pid, running.argv)


# --- the app ---------------------------------------------------------------------------


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


def _run_app(jaeger: JaegerUnderTest, logs_url: str) -> App:
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


@pytest.fixture(scope="module")
def app(jaeger: JaegerUnderTest, victoria_logs: str) -> App:
    """The app's traces, once both stores answer with all of them."""
    made = _run_app(jaeger, victoria_logs)
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


def _save_walk(name: str, text: str) -> None:
    """Keep the real output for docs/stores.md (build/ is not committed)."""
    WALK_DIR.mkdir(parents=True, exist_ok=True)
    (WALK_DIR / f"{name}.txt").write_text(text, encoding="utf-8")


# --- what goes in comes back ----------------------------------------------------------------


def test_jaeger_returns_exactly_the_spans_the_app_made(app: App, jaeger: JaegerUnderTest) -> None:
    for made in (app.slow_failed, app.fast_ok):
        spans = stores_query.fetch_trace(jaeger.query_url, made.trace_id)
        assert sorted(s.name for s in spans) == sorted(made.span_names)
        assert {s.trace_id for s in spans} == {made.trace_id}
        assert {s.service for s in spans} == {SERVICE}
        by_name = {s.name: s for s in spans}
        root = by_name[made.span_names[0]]
        assert root.parent_span_id == ""
        assert by_name["load cart"].parent_span_id == root.span_id
        assert by_name["SELECT cart_items"].parent_span_id == by_name["load cart"].span_id
        assert by_name["charge card"].parent_span_id == root.span_id
    failed = {
        s.name: s for s in stores_query.fetch_trace(jaeger.query_url, app.slow_failed.trace_id)
    }
    assert failed["charge card"].status == "ERROR"
    assert failed["charge card"].status_message == "declined"
    assert failed["load cart"].status == "UNSET"


def test_victoria_logs_returns_exactly_the_records_of_the_trace(
    app: App, victoria_logs: str
) -> None:
    for made in (app.slow_failed, app.fast_ok):
        records = stores_query.fetch_logs(
            victoria_logs, stores_query.logsql(trace_id=made.trace_id)
        )
        assert [r.message for r in records] == made.messages  # oldest first
        assert {r.trace_id for r in records} == {made.trace_id}
        assert {r.service for r in records} == {SERVICE}
        assert all(len(r.span_id) == 16 for r in records)
    # The stream fields are the two we asked for, not every resource attribute.
    (any_record,) = stores_query.fetch_logs(
        victoria_logs, stores_query.logsql(f'"{app.fast_ok.messages[-1]}"')
    )
    assert (
        any_record.fields["_stream"]
        == f'{{deployment.environment="test",service.name="{SERVICE}"}}'
    )


# --- the CLI walk ---------------------------------------------------------------------------


def test_trace_shows_every_span_and_every_log_message_in_place(
    app: App, jaeger: JaegerUnderTest, victoria_logs: str
) -> None:
    made = app.slow_failed
    result = otel_tdd("trace", made.trace_id, "--jaeger", jaeger.query_url, "--logs", victoria_logs)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    _save_walk("trace", f"$ otel-tdd trace {made.trace_id}\n{out}")
    assert out.splitlines()[0].startswith(f"trace {made.trace_id}  4 spans  1 service (shop)")
    assert "1 error" in out.splitlines()[0]
    for name in made.span_names:
        assert name in out, name
    for message in made.messages:
        assert message in out, message
    assert "\033[" not in out  # no colour into a pipe
    lines = out.splitlines()

    def row(text: str) -> int:
        return next(i for i, line in enumerate(lines) if text in line)

    # Each record sits inside its span, in time order: the waterfall reads like the request.
    assert row(made.span_names[0]) < row(made.messages[0]) < row("load cart")
    assert row("SELECT cart_items") < row(made.messages[1]) < row("charge card")
    assert row("charge card") < row(made.messages[2]) < row(made.messages[3])
    charge = lines[row("charge card")]
    assert charge.rstrip().endswith("ERROR: declined")
    assert "ERROR" in lines[row(made.error_message)]


def test_trace_json_has_the_spans_and_records(
    app: App, jaeger: JaegerUnderTest, victoria_logs: str
) -> None:
    made = app.fast_ok
    result = otel_tdd(
        "trace", made.trace_id, "--json", "--jaeger", jaeger.query_url, "--logs", victoria_logs
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["trace_id"] == made.trace_id
    assert sorted(s["name"] for s in data["spans"]) == sorted(made.span_names)
    assert [r["message"] for r in data["logs"]] == made.messages
    kinds = {s["name"]: s["kind"] for s in data["spans"]}
    assert kinds == {
        made.span_names[0]: "server",
        "load cart": "internal",
        "SELECT cart_items": "client",
        "charge card": "client",
    }


def test_colour_on_a_terminal_only(app: App, victoria_logs: str) -> None:
    """Levels are coloured when stdout is a TTY (a pty here), plain into a pipe."""
    import pty

    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "otel_tdd.cli", "logs", "--trace", app.slow_failed.trace_id,
             "--logs", victoria_logs],
            stdout=follower, stderr=subprocess.PIPE, timeout=60, env=env, check=False,
        )  # fmt: skip
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other side is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
    assert proc.returncode == 0, proc.stderr
    out = b"".join(chunks).decode()
    assert "\033[31mERROR\033[0m" in out  # the ERROR record's level, red
    assert "\033[33mWARN " in out
    piped = subprocess.run(
        [sys.executable, "-m", "otel_tdd.cli", "logs", "--trace", app.slow_failed.trace_id,
         "--logs", victoria_logs],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert app.slow_failed.error_message in piped.stdout
    assert "\033[" not in piped.stdout


def test_trace_reads_the_store_urls_from_the_environment(
    app: App, jaeger: JaegerUnderTest, victoria_logs: str
) -> None:
    env = {
        **os.environ,
        "OTEL_TDD_JAEGER_URL": jaeger.query_url,
        "OTEL_TDD_LOGS_URL": victoria_logs,
        "NO_COLOR": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "otel_tdd.cli", "trace", app.fast_ok.trace_id],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert app.fast_ok.messages[-1] in result.stdout


def test_traces_lists_filters_errors_and_duration(app: App, jaeger: JaegerUnderTest) -> None:
    base = ("traces", "--service", SERVICE, "--jaeger", jaeger.query_url)
    every = otel_tdd(*base)
    assert every.returncode == 0, every.stderr
    _save_walk("traces", f"$ otel-tdd traces --service {SERVICE}\n{every.stdout}")
    assert app.slow_failed.trace_id in every.stdout
    assert app.fast_ok.trace_id in every.stdout
    # Newest first: the fast request ran second.
    assert every.stdout.index(app.fast_ok.trace_id) < every.stdout.index(app.slow_failed.trace_id)

    errors = otel_tdd(*base, "--errors")
    assert errors.returncode == 0, errors.stderr
    _save_walk("traces-errors", f"$ otel-tdd traces --service {SERVICE} --errors\n{errors.stdout}")
    assert app.slow_failed.trace_id in errors.stdout
    assert app.fast_ok.trace_id not in errors.stdout

    slow = otel_tdd(*base, "--min-duration", "250ms")
    assert slow.returncode == 0, slow.stderr
    assert app.slow_failed.trace_id in slow.stdout
    assert app.fast_ok.trace_id not in slow.stdout

    data = json.loads(otel_tdd(*base, "--limit", "1", "--json").stdout)
    assert [t["trace_id"] for t in data] == [app.fast_ok.trace_id]


def test_traces_of_an_unknown_service_name_the_known_ones(
    app: App, jaeger: JaegerUnderTest
) -> None:
    result = otel_tdd("traces", "--service", "nope", "--jaeger", jaeger.query_url)
    assert result.returncode == 1
    assert "no service 'nope'" in result.stderr
    assert SERVICE in result.stderr


def test_logs_filters_by_trace_level_service_and_logsql(app: App, victoria_logs: str) -> None:
    made = app.slow_failed
    by_trace = otel_tdd("logs", "--trace", made.trace_id, "--logs", victoria_logs)
    assert by_trace.returncode == 0, by_trace.stderr
    _save_walk("logs-trace", f"$ otel-tdd logs --trace {made.trace_id}\n{by_trace.stdout}")
    lines = by_trace.stdout.splitlines()
    assert len(lines) == len(made.messages)
    for line, message in zip(lines, made.messages, strict=True):
        assert f"  {SERVICE}  {message}  trace_id={made.trace_id}" in line, line

    errors = otel_tdd("logs", "--service", SERVICE, "--level", "error", "--logs", victoria_logs)
    assert errors.returncode == 0, errors.stderr
    _save_walk("logs-errors", f"$ otel-tdd logs --service {SERVICE} --level error\n{errors.stdout}")
    (line,) = errors.stdout.splitlines()
    assert made.error_message in line
    assert f"trace_id={made.trace_id}" in line

    warnings_up = otel_tdd("logs", "--level", "warning", "--logs", victoria_logs)
    assert len(warnings_up.stdout.splitlines()) == 2

    text = otel_tdd("logs", "charged", "--logs", victoria_logs, "--json")
    (record,) = [json.loads(x) for x in text.stdout.splitlines()]
    assert record["_msg"] == app.fast_ok.messages[-1]
    assert record["trace_id"] == app.fast_ok.trace_id

    other = otel_tdd("logs", "--service", "nope", "--logs", victoria_logs)
    assert other.returncode == 0 and other.stdout == ""


def test_logs_follow_prints_new_records_until_interrupted(victoria_logs: str) -> None:
    service = "follower"
    follower = subprocess.Popen(
        [sys.executable, "-m", "otel_tdd.cli", "logs", "-f", "--service", service,
         "--logs", victoria_logs],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(follower.stdout.readline, "")),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    try:
        provider = LoggerProvider(resource=Resource.create({"service.name": service}))
        provider.add_log_record_processor(
            BatchLogRecordProcessor(
                OTLPLogExporter(
                    endpoint=f"{victoria_logs}/insert/opentelemetry/v1/logs",
                    headers={"VL-Stream-Fields": STREAM_FIELDS},
                )
            )
        )
        logger = provider.get_logger("follow")
        from opentelemetry._logs import LogRecord as ApiLogRecord

        for i in range(3):
            logger.emit(ApiLogRecord(body=f"tick {i}", severity_text="INFO", severity_number=9))
            provider.force_flush(5000)
            time.sleep(1.2)  # a poll round between them: each arrives in its own round
        provider.shutdown()
        wait_for(lambda: len(lines) >= 3, 20, "three followed records")
        time.sleep(2.5)  # two more polls: nothing is printed twice
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=10)
    assert follower.returncode == 0, follower.stderr.read()  # type: ignore[union-attr]
    assert len(lines) == 3, lines
    for i, line in enumerate(lines):
        assert line.rstrip().endswith(f"  {service}  tick {i}"), line


# --- errors --------------------------------------------------------------------------------


def test_unknown_trace_id_is_an_error_naming_it(
    jaeger: JaegerUnderTest, victoria_logs: str
) -> None:
    unknown = "0123456789abcdef0123456789abcdef"
    result = otel_tdd("trace", unknown, "--jaeger", jaeger.query_url, "--logs", victoria_logs)
    assert result.returncode == 1
    assert f"trace {unknown} is not in Jaeger at {jaeger.query_url}" in result.stderr
    assert result.stdout == ""


def test_bad_trace_id_is_refused_before_asking(jaeger: JaegerUnderTest) -> None:
    result = otel_tdd("trace", "not-a-trace", "--jaeger", jaeger.query_url)
    assert result.returncode == 1
    assert "bad trace id 'not-a-trace'" in result.stderr


def test_unreachable_stores_say_to_start_the_stack() -> None:
    (port,) = process.free_ports(1)  # nothing listens there
    dead = f"http://127.0.0.1:{port}"
    trace_id = "0123456789abcdef0123456789abcdef"
    for args in (
        ("trace", trace_id, "--jaeger", dead),
        ("traces", "--service", SERVICE, "--jaeger", dead),
        ("logs", "--logs", dead),
        ("exemplars", "x_seconds", "--prometheus", dead),
    ):
        result = otel_tdd(*args)
        assert result.returncode == 1, args
        assert "cannot reach" in result.stderr and dead in result.stderr, result.stderr
        assert "otel-tdd stack up" in result.stderr, result.stderr


def test_trace_without_the_log_store_prints_the_spans_and_fails(
    app: App, jaeger: JaegerUnderTest
) -> None:
    (port,) = process.free_ports(1)
    dead = f"http://127.0.0.1:{port}"
    result = otel_tdd("trace", app.fast_ok.trace_id, "--jaeger", jaeger.query_url, "--logs", dead)
    assert result.returncode == 1
    assert all(name in result.stdout for name in app.fast_ok.span_names)
    assert (
        "log records are missing" in result.stderr and "cannot reach VictoriaLogs" in result.stderr
    )


def test_jaeger_does_not_trace_itself_into_our_collector(app: App, jaeger: JaegerUnderTest) -> None:
    """enable_tracing: false: its queries above made no `jaeger` service in the store."""
    assert stores_query.known_services(jaeger.query_url) == [SERVICE]


def test_both_stores_serve_prometheus_metrics(jaeger: JaegerUnderTest, victoria_logs: str) -> None:
    for url, series in ((jaeger.metrics_url, "otelcol_"), (f"{victoria_logs}/metrics", "vl_")):
        with urllib.request.urlopen(url, timeout=10) as response:
            assert series in response.read().decode(), url


# --- exemplars: Prometheus 2.42 with exemplar storage ----------------------------------------


class _OpenMetrics(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header(
            "Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8"
        )
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


def _openmetrics(slow: str, fast: str) -> bytes:
    """A latency histogram whose slow and fast buckets carry our two traces as exemplars."""
    now = time.time()
    name = "shop_request_duration_seconds"

    def bucket(le: str, count: int, trace_id: str, span_id: str, value: float) -> str:
        exemplar = f'{{trace_id="{trace_id}",span_id="{span_id}"}} {value} {now:.3f}'
        return f'{name}_bucket{{le="{le}"}} {count} # {exemplar}\n'

    return (
        f"# TYPE {name} histogram\n# UNIT {name} seconds\n"
        + bucket("0.1", 1, fast, "00f067aa0ba902b7", 0.012)
        + bucket("0.5", 2, slow, "00f067aa0ba902b8", 0.31)
        + f'{name}_bucket{{le="+Inf"}} 2\n{name}_sum 0.322\n{name}_count 2\n# EOF\n'
    ).encode()


@pytest.fixture(scope="module")
def prometheus_with_exemplars(app: App, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus not found: apt-get install prometheus", pytrace=False)
    handler = type(
        "Handler",
        (_OpenMetrics,),
        {"body": _openmetrics(app.slow_failed.trace_id, app.fast_ok.trace_id)},
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = tmp_path_factory.mktemp("prometheus")
    (port,) = process.free_ports(1)
    (base / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: shop\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{server.server_address[1]}']}}]\n"
    )
    argv = [
        binary, f"--config.file={base / 'prometheus.yml'}", f"--storage.tsdb.path={base / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--enable-feature=exemplar-storage",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        running = _start(argv, base / "prometheus.log", f"{url}/-/ready", "Prometheus")
        try:
            wait_for(
                lambda: (
                    len(stores_query.fetch_exemplars(url, "shop_request_duration_seconds")) >= 2
                ),
                30,
                "Prometheus to store both exemplars",
            )
            yield url
        finally:
            process.stop(running.pid, running.argv)
    finally:
        server.shutdown()
        server.server_close()


def test_exemplars_list_the_slowest_trace_first_and_it_opens(
    app: App, prometheus_with_exemplars: str, jaeger: JaegerUnderTest, victoria_logs: str
) -> None:
    metric = "shop_request_duration_seconds"
    result = otel_tdd("exemplars", metric, "--prometheus", prometheus_with_exemplars)
    assert result.returncode == 0, result.stderr
    _save_walk("exemplars", f"$ otel-tdd exemplars {metric}\n{result.stdout}")
    rows = result.stdout.splitlines()[1:]
    assert [row.split()[2] for row in rows] == [app.slow_failed.trace_id, app.fast_ok.trace_id]
    assert rows[0].split()[0] == "310.0ms"
    assert "le=0.5" in rows[0]
    # The walk's last step: the slowest bucket's trace id opens in `otel-tdd trace`.
    opened = otel_tdd(
        "trace", rows[0].split()[2], "--jaeger", jaeger.query_url, "--logs", victoria_logs
    )
    assert opened.returncode == 0, opened.stderr
    assert app.slow_failed.error_message in opened.stdout


def test_exemplars_of_a_metric_without_any_say_what_prometheus_needs(
    prometheus_with_exemplars: str,
) -> None:
    result = otel_tdd(
        "exemplars", "no_such_metric_seconds", "--prometheus", prometheus_with_exemplars
    )
    assert result.returncode == 0
    assert result.stdout == ""
    assert "exemplar-storage" in result.stderr


# --- the shipped Jaeger configs, checked by Jaeger itself ------------------------------------


@pytest.mark.parametrize(
    "config", ["compose/jaeger/config.yaml", "deploy/k8s/stores/jaeger-config.yaml"]
)
def test_jaeger_accepts_the_shipped_configs(store_binaries: dict[str, Path], config: str) -> None:
    path = Path(__file__).resolve().parents[2] / config
    result = subprocess.run(
        [str(store_binaries["jaeger"]), "validate", f"--config={path}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_jaeger_validate_rejects_a_misspelt_key(
    store_binaries: dict[str, Path], tmp_path: Path
) -> None:
    """The check above can fail: a typo in the config is refused by name."""
    source = (Path(__file__).resolve().parents[2] / "compose/jaeger/config.yaml").read_text()
    bad = tmp_path / "config.yaml"
    bad.write_text(source.replace("enable_tracing:", "enable_tracin:"))
    result = subprocess.run(
        [str(store_binaries["jaeger"]), "validate", f"--config={bad}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "enable_tracin" in result.stdout + result.stderr
