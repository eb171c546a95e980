"""The trace and log stores, real binaries: what goes in comes back, and the CLI walk.

The stores and the app are in stores_fixtures.py: an app of a few spans with log
records inside them, sent straight to Jaeger v2 and VictoriaLogs over OTLP (the
Collector's export to the stores is the stack integration's part). Then: Jaeger
has exactly those spans, VictoriaLogs exactly those records, and ``otel-tdd
trace | traces | logs`` show them. ``exemplars`` and ``jaeger validate`` are in
test_stores_exemplars.py. A missing Go or build FAILS (never skips).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from stores_helpers import (
    SELF_EXPORT_DELAY_MS,
    SERVICE,
    STREAM_FIELDS,
    App,
    JaegerUnderTest,
    otel_tdd,
    running_jaeger,
    save_walk,
    wait_for,
)

from otel_tdd import stores_cli, stores_query
from otel_tdd.stack import process
from otel_tdd.stack.store_configs import load_jaeger_config

pytestmark = pytest.mark.integration
# The stores and the app, as fixtures shared with the other stores' test module.
pytest_plugins = ["stores_fixtures"]


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
    save_walk("trace", f"$ otel-tdd trace {made.trace_id}\n{out}")
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
    save_walk("traces", f"$ otel-tdd traces --service {SERVICE}\n{every.stdout}")
    assert app.slow_failed.trace_id in every.stdout
    assert app.fast_ok.trace_id in every.stdout
    # Newest first: the fast request ran second.
    assert every.stdout.index(app.fast_ok.trace_id) < every.stdout.index(app.slow_failed.trace_id)

    errors = otel_tdd(*base, "--errors")
    assert errors.returncode == 0, errors.stderr
    save_walk("traces-errors", f"$ otel-tdd traces --service {SERVICE} --errors\n{errors.stdout}")
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
    save_walk("logs-trace", f"$ otel-tdd logs --trace {made.trace_id}\n{by_trace.stdout}")
    lines = by_trace.stdout.splitlines()
    assert len(lines) == len(made.messages)
    for line, message in zip(lines, made.messages, strict=True):
        assert f"  {SERVICE}  {message}  trace_id={made.trace_id}" in line, line

    errors = otel_tdd("logs", "--service", SERVICE, "--level", "error", "--logs", victoria_logs)
    assert errors.returncode == 0, errors.stderr
    save_walk("logs-errors", f"$ otel-tdd logs --service {SERVICE} --level error\n{errors.stdout}")
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


def _send_records(victoria_logs: str, service: str, bodies: list[str]) -> None:
    """``bodies`` as records of ``service``, 1 ms apart, in one export."""
    from opentelemetry._logs import LogRecord as ApiLogRecord

    provider = LoggerProvider(resource=Resource.create({"service.name": service}))
    provider.add_log_record_processor(
        BatchLogRecordProcessor(
            OTLPLogExporter(
                endpoint=f"{victoria_logs}/insert/opentelemetry/v1/logs",
                headers={"VL-Stream-Fields": STREAM_FIELDS},
            )
        )
    )
    logger = provider.get_logger("limit")
    now = time.time_ns()
    for i, body in enumerate(bodies):
        logger.emit(
            ApiLogRecord(timestamp=now + i * 1_000_000, body=body, severity_text="INFO",
                         severity_number=9)
        )  # fmt: skip
    provider.force_flush(5000)
    provider.shutdown()


def test_logs_over_the_limit_shows_the_oldest_and_says_more_exist(victoria_logs: str) -> None:
    """--limit keeps the oldest N (the listing reads from the start) and says so."""
    service = "limited"
    bodies = [f"line {i}" for i in range(5)]
    _send_records(victoria_logs, service, bodies)
    base = ("logs", "--service", service, "--logs", victoria_logs)
    wait_for(lambda: len(otel_tdd(*base).stdout.splitlines()) == 5, 20, "the five records")
    limited = otel_tdd(*base, "--limit", "2")
    assert limited.returncode == 0, limited.stderr
    shown = [line.rsplit("  ", 1)[-1] for line in limited.stdout.splitlines()]
    assert shown == ["line 0", "line 1"]
    assert "showing 2, more exist (raise --limit)" in limited.stderr
    exact = otel_tdd(*base, "--limit", "5")
    assert len(exact.stdout.splitlines()) == 5 and "more exist" not in exact.stderr


def test_trace_says_when_it_shows_only_the_first_records(
    app: App,
    jaeger: JaegerUnderTest,
    victoria_logs: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`trace` reads up to 1000 records; past that it says so. Here the cap is 2 of 4."""
    real = stores_query.fetch_logs
    monkeypatch.setattr(stores_query, "fetch_logs", lambda url, query: real(url, query, limit=2))
    made = app.slow_failed
    assert stores_cli.trace_cli([made.trace_id, "--jaeger", jaeger.query_url,
                                 "--logs", victoria_logs]) == 0  # fmt: skip
    out, err = capsys.readouterr()
    assert made.messages[1] in out and made.messages[2] not in out  # the oldest two
    assert "showing the first 2 log records of the trace, more exist" in err
    assert f"(`otel-tdd logs --trace {made.trace_id} --limit N` lists them)" in err


def test_logs_follow_catches_up_on_a_burst_bigger_than_its_limit(victoria_logs: str) -> None:
    """Seven records between two polls of a follower asking 3 at a time: all seven, in order."""
    service = "burst"
    follower = subprocess.Popen(
        [sys.executable, "-m", "otel_tdd.cli", "logs", "-f", "--service", service,
         "--limit", "3", "--logs", victoria_logs],
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
        time.sleep(1.5)  # the follower's first (empty) round has run
        bodies = [f"burst {i}" for i in range(7)]
        _send_records(victoria_logs, service, bodies)
        wait_for(lambda: len(lines) >= 7, 20, "seven followed records")
        time.sleep(2.5)  # two more polls: nothing is printed twice
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=10)
    assert follower.returncode == 0, follower.stderr.read()  # type: ignore[union-attr]
    assert [line.rstrip().rsplit("  ", 1)[-1] for line in lines] == bodies


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


def test_unreachable_stores_say_how_to_start_each_one() -> None:
    """`otel-tdd stack up` runs all three; compose's way to start the two stores is named too."""
    (port,) = process.free_ports(1)  # nothing listens there
    dead = f"http://127.0.0.1:{port}"
    trace_id = "0123456789abcdef0123456789abcdef"
    compose = "`docker compose -f compose/docker-compose.yml up -d jaeger victoria-logs`"
    for args, hint in (
        (("trace", trace_id, "--jaeger", dead), f"{compose}), or pass --jaeger URL or set OTEL_"),
        (("traces", "--service", SERVICE, "--jaeger", dead), f"{compose}), or pass --jaeger"),
        (("logs", "--logs", dead), f"{compose}), or pass --logs URL or set OTEL_TDD_LOGS_URL"),
        (("exemplars", "x_seconds", "--prometheus", dead), "start it with `otel-tdd stack up`"),
    ):
        result = otel_tdd(*args)
        assert result.returncode == 1, args
        assert "cannot reach" in result.stderr and dead in result.stderr, result.stderr
        assert hint in result.stderr, result.stderr
        assert "`otel-tdd stack up`" in result.stderr, result.stderr


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


def test_jaeger_does_not_trace_itself(app: App, jaeger: JaegerUnderTest) -> None:
    """enable_tracing: false. This Jaeger would export its own spans to itself (see
    running_jaeger), and its queries above would make a `jaeger` service: none."""
    time.sleep(4 * SELF_EXPORT_DELAY_MS / 1000)  # several of its would-be exports
    assert stores_query.known_services(jaeger.query_url) == [SERVICE]


def test_the_self_tracing_check_fails_when_jaeger_traces_itself(
    store_binaries: dict[str, Path], tmp_path: Path
) -> None:
    """The check above can fail: with enable_tracing: true, `jaeger` shows up."""
    config = load_jaeger_config()
    config["extensions"]["jaeger_query"]["enable_tracing"] = True
    with running_jaeger(store_binaries["jaeger"], tmp_path, config) as traced:
        wait_for(
            lambda: "jaeger" in stores_query.known_services(traced.query_url),
            30,
            "a self-tracing Jaeger to list its own service",
        )


def test_both_stores_serve_prometheus_metrics(jaeger: JaegerUnderTest, victoria_logs: str) -> None:
    for url, series in ((jaeger.metrics_url, "otelcol_"), (f"{victoria_logs}/metrics", "vl_")):
        with urllib.request.urlopen(url, timeout=10) as response:
            assert series in response.read().decode(), url
