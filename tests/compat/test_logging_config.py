"""Apps that configure logging themselves, bare and under ``otel-tdd run`` (issue 13, defect 4).

Each app is the same small job (a span around a few records at DEBUG, INFO and
ERROR, one failing step) with one of the ways real apps set logging up:
``basicConfig`` (plain and ``force=True``), ``dictConfig`` (a root section, and a
named logger with its own console handler that propagates) and ``fileConfig``.
Before otel_tdd/logs/guard.py, under the wrapper, the first lost its DEBUG lines
and its format, the root-replacing ones lost every OTLP log record silently, and
the named logger printed each line twice.

What each row proves, against the real Collector: the app's console output and exit
code are the bare run's; every record written in the span reaches OTLP with its trace
and span id; one error span and one error record; the wrapper says nothing on start
but, where the app's console replaced our JSON, one warning saying so.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from matrix_runs import (
    PYTHON,
    Outcome,
    of_service,
    otlp_to,
    run_app,
    wrapper_problems,
    write_app,
)

pytestmark = pytest.mark.integration

# The unmodified app: it uses only the OpenTelemetry API (a no-op without the wrapper).
JOB = """
import logging, logging.config, sys
from opentelemetry import trace

{configure}

log = logging.getLogger("app.jobs")
helper = logging.getLogger("lib.helper")
tracer = trace.get_tracer("jobs")
with tracer.start_as_current_span("job"):
    log.debug("job starts")
    log.info("job step %d", 1)
    helper.info("helper ran")
    try:
        with tracer.start_as_current_span("failing-step"):
            raise ValueError("bad input")
    except ValueError:
        log.exception("step failed")
print("done", flush=True)
"""
FORMAT = "APP %(levelname)s %(name)s %(message)s"
MESSAGES = {"job starts", "job step 1", "helper ran", "step failed"}

BASIC = f"logging.basicConfig(format={FORMAT!r}, level=logging.DEBUG)"
BASIC_FORCE = (
    f"logging.basicConfig(format={FORMAT!r}, level=logging.DEBUG, force=True, stream=sys.stdout)"
)
DICT_ROOT = f"""logging.config.dictConfig({{
    "version": 1,
    "formatters": {{"plain": {{"format": {FORMAT!r}}}}},
    "handlers": {{"console": {{"class": "logging.StreamHandler", "formatter": "plain",
                               "stream": "ext://sys.stdout"}}}},
    "root": {{"handlers": ["console"], "level": "DEBUG"}},
}})"""
# A named logger with its own console handler that propagates (the default); the rest
# of the process (lib.helper here) keeps the root logger's output.
DICT_NAMED = f"""logging.config.dictConfig({{
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {{"plain": {{"format": {FORMAT!r}}}}},
    "handlers": {{"console": {{"class": "logging.StreamHandler", "formatter": "plain",
                               "stream": "ext://sys.stderr"}}}},
    "loggers": {{"app": {{"handlers": ["console"], "level": "DEBUG"}}}},
}})"""
FILE_CONFIG_INI = f"""
[loggers]
keys=root

[handlers]
keys=console

[formatters]
keys=plain

[logger_root]
level=DEBUG
handlers=console

[handler_console]
class=StreamHandler
formatter=plain
args=(sys.stderr,)

[formatter_plain]
format={FORMAT}
"""
FILE_CONFIG = "logging.config.fileConfig(sys.argv[1])"


def run_both(
    tmp_path: Path, collector: Any, configure: str, service: str
) -> tuple[Outcome, Outcome]:
    app = write_app(tmp_path, f"{service}.py", JOB.format(configure=configure))
    ini = write_app(tmp_path, "logging.ini", FILE_CONFIG_INI)
    argv = [PYTHON, str(app), str(ini)]
    bare = run_app(argv, cwd=tmp_path)
    wrapped = run_app(argv, cwd=tmp_path, wrap=otlp_to(collector, service))
    return bare, wrapped


def exported(collector: Any, service: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the app's records, its spans) once all of them reached the Collector."""

    def records() -> list[dict[str, Any]]:
        found = [r for r in of_service(collector.logs(), service) if r["body"] in MESSAGES]
        return found if len(found) >= len(MESSAGES) else []

    logs = collector.wait_for(records, 20, f"{service}'s records over OTLP")
    spans = collector.wait_for(
        lambda: (
            [s for s in of_service(collector.spans(), service) if s["name"] == "job"]
            and of_service(collector.spans(), service)
        ),
        20,
        f"{service}'s spans",
    )
    return logs, spans


def assert_exported_and_correlated(collector: Any, service: str) -> None:
    logs, spans = exported(collector, service)
    job = next(s for s in spans if s["name"] == "job")
    assert sorted(r["body"] for r in logs) == sorted(MESSAGES), "each record exactly once"
    for record in logs:
        assert (record["trace_id"], record["span_id"]) == (job["trace_id"], job["span_id"]), record
    errors = [s for s in spans if s["status_code"] == "ERROR"]
    assert [s["name"] for s in errors] == ["failing-step"]
    error_records = [r for r in logs if r["severity_text"] == "ERROR"]
    assert [r["body"] for r in error_records] == ["step failed"]
    assert "ValueError: bad input" in error_records[0]["attributes"]["exception.stacktrace"]
    # The DEBUG record passed the app's level (DEBUG), not the wrapper's default (INFO).
    assert any(r["body"] == "job starts" and r["severity_text"] == "DEBUG" for r in logs)


ROOT_WARNING = "put a console handler on the root logger"
# The row's version column is otel-tdd's (its logging guard); logging itself is the stdlib's.
STDLIB_NOTE = f"stdlib logging of Python {sys.version_info.major}.{sys.version_info.minor}"


@pytest.mark.parametrize(
    ("scenario", "configure"),
    [
        ("basicConfig(format, level=DEBUG)", BASIC),
        ("basicConfig(force=True, stream=stdout)", BASIC_FORCE),
        ("dictConfig with a root console handler", DICT_ROOT),
        ("fileConfig with a root console handler", FILE_CONFIG),
    ],
    ids=["basicConfig", "basicConfig-force", "dictConfig-root", "fileConfig"],
)
def test_an_app_that_owns_the_root_console_keeps_it_and_its_logs_still_export(
    module_collector: Any, tmp_path: Path, compat_row: Any, scenario: str, configure: str
) -> None:
    collector = module_collector
    service = "logcfg-" + "".join(c for c in scenario if c.isalnum())[:30].lower()
    bare, wrapped = run_both(tmp_path, collector, configure, service)

    assert bare.returncode == 0, bare.stderr
    # Exactly the bare run's console: the app's format, its DEBUG lines, each line once.
    assert (wrapped.returncode, wrapped.app_stdout(), wrapped.app_stderr()) == (
        bare.returncode,
        bare.app_stdout(),
        bare.app_stderr(),
    ), wrapped.stderr
    console = bare.app_stdout() + bare.app_stderr()
    assert "APP DEBUG app.jobs job starts" in console
    # Export never lost (force=True, a root section and fileConfig used to remove it).
    assert_exported_and_correlated(collector, service)
    # Our JSON does not print what the app's console prints.
    assert [r["message"] for r in wrapped.json_records() if r["message"] in MESSAGES] == []
    # One warning, on stderr, that names what happened; nothing else from the wrapper.
    assert len([line for line in wrapped.wrapper_lines() if ROOT_WARNING in line]) == 1
    assert wrapper_problems(wrapped, allowed=(ROOT_WARNING,)) == []
    compat_row(
        "stdlib logging (otel-tdd guard)",
        scenario,
        [
            "same console output and exit code as bare (app's format and DEBUG level)",
            "every record over OTLP once, with the span's trace and span id",
            "one error span, one error record with its traceback",
            "one stderr warning that the app's console replaced the JSON",
        ],
        distribution="otel-tdd",
        notes=[STDLIB_NOTE],
    )


def test_a_named_logger_with_its_own_console_prints_each_line_once(
    module_collector: Any, tmp_path: Path, compat_row: Any
) -> None:
    collector = module_collector
    service = "logcfg-dict-named"
    bare, wrapped = run_both(tmp_path, collector, DICT_NAMED, service)

    assert bare.returncode == wrapped.returncode == 0, wrapped.stderr
    # The app logger's lines: the bare run's, once (no JSON twin of them on stdout).
    assert wrapped.app_stderr() == bare.app_stderr()
    assert "APP DEBUG app.jobs job starts" in bare.app_stderr()
    assert wrapped.app_stdout() == bare.app_stdout() == ["done"]
    json_records = wrapped.json_records()
    app_lines = {"job starts", "job step 1", "step failed"}
    assert [r for r in json_records if r["message"] in app_lines] == []
    # The rest of the process (lib.helper, which the app did not configure) is our JSON,
    # with the trace and span id of the request it ran in.
    helper = [r for r in json_records if r["message"] == "helper ran"]
    assert len(helper) == 1 and helper[0]["trace_id"] and helper[0]["span_id"]
    # The root console is still ours: no warning, nothing else from the wrapper.
    assert wrapper_problems(wrapped) == []

    assert_exported_and_correlated(collector, service)
    _, spans = exported(collector, service)
    job = next(s for s in spans if s["name"] == "job")
    assert helper[0]["trace_id"] == job["trace_id"] and helper[0]["span_id"] == job["span_id"]
    compat_row(
        "stdlib logging (otel-tdd guard)",
        "dictConfig: a named logger with its own console handler, propagating",
        [
            "that logger's lines once, in the app's format, as bare",
            "other loggers' records as JSON with trace and span id",
            "every record over OTLP once, with the span's trace and span id",
            "one error span, one error record",
            "no WARNING/ERROR from the wrapper",
        ],
        distribution="otel-tdd",
        notes=[STDLIB_NOTE],
    )


def test_basic_config_with_only_a_level_keeps_the_json_at_that_level(
    module_collector: Any, tmp_path: Path, compat_row: Any
) -> None:
    """``basicConfig(level=DEBUG)`` chooses no format, stream or handler: the app gets its
    level (the DEBUG line used to vanish) and keeps otel-tdd's JSON as its console."""
    collector, service = module_collector, "logcfg-basic-level-only"
    bare, wrapped = run_both(
        tmp_path, collector, "logging.basicConfig(level=logging.DEBUG)", service
    )

    assert bare.returncode == wrapped.returncode == 0, wrapped.stderr
    assert "DEBUG:app.jobs:job starts" in bare.app_stderr()
    assert wrapped.app_stdout() == bare.app_stdout() == ["done"]
    assert wrapped.stderr == "", wrapped.stderr  # no plain log line, no warning
    _, spans = exported(collector, service)
    job = next(s for s in spans if s["name"] == "job")
    on_stdout = [r for r in wrapped.json_records() if r["message"] in MESSAGES]
    assert sorted(r["message"] for r in on_stdout) == sorted(MESSAGES)
    assert {(r["trace_id"], r["span_id"]) for r in on_stdout} == {(job["trace_id"], job["span_id"])}
    assert_exported_and_correlated(collector, service)
    compat_row(
        "stdlib logging (otel-tdd guard)",
        "basicConfig(level=DEBUG) alone",
        [
            "the app's level applies (its DEBUG records are written)",
            "records as JSON on stdout with trace and span id, no warning",
            "every record over OTLP once, with the span's trace and span id",
            "one error span, one error record",
        ],
        distribution="otel-tdd",
        notes=[STDLIB_NOTE],
    )


def test_an_app_format_can_show_the_trace_id(module_collector: Any, tmp_path: Path) -> None:
    """``%(otelTraceID)s`` (opentelemetry-instrumentation-logging's name) in the app's format."""
    collector = module_collector
    configure = (
        "logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, "
        "format='%(otelTraceID)s %(otelSpanID)s %(message)s')"
    )
    service = "logcfg-format-ids"
    app = write_app(tmp_path, "app.py", JOB.format(configure=configure))
    wrapped = run_app([PYTHON, str(app)], cwd=tmp_path, wrap=otlp_to(collector, service))
    assert wrapped.returncode == 0, wrapped.stderr
    line = next(line for line in wrapped.app_stdout() if line.endswith(" job step 1"))
    _, spans = exported(collector, service)
    job = next(s for s in spans if s["name"] == "job")
    assert line.split(" ")[:2] == [job["trace_id"], job["span_id"]], wrapped.stdout
    assert "Logging error" not in wrapped.stderr


def test_a_plain_app_is_not_affected(tmp_path: Path) -> None:
    """No logging configuration: JSON on stdout as before, no warning, nothing patched in."""
    app = write_app(tmp_path, "plain.py", JOB.format(configure=""))
    env = {"OTEL_TDD_LOG_LEVEL": "DEBUG"}
    wrapped = run_app([PYTHON, str(app)], cwd=tmp_path, wrap=["--exporter", "none"], env=env)
    assert wrapped.returncode == 0, wrapped.stderr
    messages = [r["message"] for r in wrapped.json_records()]
    assert sorted(m for m in messages if m in MESSAGES) == sorted(MESSAGES)
    assert wrapped.wrapper_lines() == []
