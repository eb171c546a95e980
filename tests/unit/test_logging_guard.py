"""otel_tdd.logs.guard in one process: the app's logging configuration and ours, both kept.

The end-to-end proof (bare vs ``otel-tdd run``, real Collector) is
tests/compat/test_logging_config.py; these pin each rule fast, with the in-memory
capture. The app's console handlers write to ``sys.stdout``/``sys.stderr`` (pytest's
capsys), the JSON to the capture's own stream.
"""

from __future__ import annotations

import logging
import logging.config
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import context, trace

from otel_tdd.logs import guard as logging_guard
from otel_tdd.structured_logging import JsonLogHandler
from otel_tdd.testing import Capture, capture_telemetry

FORMAT = "APP %(levelname)s %(name)s %(message)s"


@pytest.fixture
def app_logging() -> Iterator[None]:
    """Whatever a test's configuration does to the logging tree is undone afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    loggers = dict(logging.Logger.manager.loggerDict)
    states = {
        name: (lg.handlers[:], lg.level, lg.propagate, lg.disabled)
        for name, lg in loggers.items()
        if isinstance(lg, logging.Logger)
    }
    warned = logging_guard._state.warned
    logging_guard._state.warned = False
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, (lg_handlers, lg_level, propagate, disabled) in states.items():
        lg = logging.getLogger(name)
        lg.handlers[:], lg.level, lg.propagate, lg.disabled = (
            lg_handlers,
            lg_level,
            propagate,
            disabled,
        )
    for name in set(logging.Logger.manager.loggerDict) - set(loggers):
        logging.getLogger(name).handlers.clear()
    logging_guard._state.warned = warned


@pytest.fixture
def capture(app_logging: None) -> Iterator[Capture]:
    with capture_telemetry(log_level="INFO") as captured:
        yield captured


def ours(capture: Capture) -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, JsonLogHandler)]


def only_ours(capture: Capture) -> None:
    """The root logger as a fresh process has it under otel-tdd: our handler alone (pytest's
    logging plugin adds its own during each test phase, and basicConfig would see them)."""
    logging.getLogger().handlers[:] = ours(capture)


def in_a_span(*messages: tuple[str, int, str]) -> trace.SpanContext:
    with trace.get_tracer("t").start_as_current_span("job") as span:
        for name, level, message in messages:
            logging.getLogger(name).log(level, message)
        return span.get_span_context()


def test_basic_config_takes_effect_and_records_still_export(
    capture: Capture, capsys: pytest.CaptureFixture[str]
) -> None:
    only_ours(capture)
    logging.basicConfig(format=FORMAT, level=logging.DEBUG, stream=sys.stdout)
    ids = in_a_span(("app", logging.DEBUG, "debug line"), ("app", logging.INFO, "info line"))

    out, err = capsys.readouterr()
    assert out.splitlines() == ["APP DEBUG app debug line", "APP INFO app info line"]
    assert "put a console handler on the root logger" in err
    # The app's console has them: no JSON twin; OTLP has both, with the span's ids.
    assert [r["message"] for r in capture.records()] == []
    exported = [(r.log_record.body, r.log_record.trace_id) for r in capture.otel_logs()]
    assert exported == [("debug line", ids.trace_id), ("info line", ids.trace_id)]
    assert logging.getLogger().handlers[-1] is ours(capture)[0]


def test_basic_config_with_only_a_level_sets_it_and_keeps_the_json(
    capture: Capture, capsys: pytest.CaptureFixture[str]
) -> None:
    only_ours(capture)
    logging.basicConfig(level=logging.DEBUG)
    in_a_span(("app", logging.DEBUG, "debug line"))
    assert logging.getLogger().level == logging.DEBUG
    assert logging.getLogger().handlers == ours(capture)
    assert [r["message"] for r in capture.records()] == ["debug line"]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "configure",
    [
        lambda: logging.basicConfig(force=True, stream=sys.stderr, level=logging.INFO),
        lambda: logging.config.dictConfig(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {"c": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
                "root": {"handlers": ["c"], "level": "INFO"},
            }
        ),
    ],
    ids=["basicConfig-force", "dictConfig-root"],
)
def test_a_configuration_that_replaces_the_root_handlers_keeps_ours(
    capture: Capture, capsys: pytest.CaptureFixture[str], configure: Any
) -> None:
    configure()
    assert len(ours(capture)) == 1
    in_a_span(("app", logging.INFO, "kept"))
    assert [r.log_record.body for r in capture.otel_logs()] == ["kept"]
    assert "kept" in capsys.readouterr().err


def test_the_warning_is_printed_once(capture: Capture, capsys: pytest.CaptureFixture[str]) -> None:
    logging.basicConfig(force=True, stream=sys.stderr)
    logging.basicConfig(force=True, stream=sys.stderr)
    assert capsys.readouterr().err.count("otel-tdd: the app's logging configuration") == 1


def test_a_named_logger_with_a_console_handler_is_printed_once(
    capture: Capture, capsys: pytest.CaptureFixture[str]
) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"f": {"format": FORMAT}},
            "handlers": {
                "c": {
                    "class": "logging.StreamHandler",
                    "formatter": "f",
                    "stream": "ext://sys.stderr",
                }
            },
            "loggers": {"app": {"handlers": ["c"], "level": "INFO"}},
        }
    )
    in_a_span(("app.jobs", logging.INFO, "from the app"), ("lib", logging.INFO, "from a library"))

    err = capsys.readouterr().err
    assert err.splitlines() == ["APP INFO app.jobs from the app"]  # no warning: root is ours
    assert [r["message"] for r in capture.records()] == ["from a library"]
    assert sorted(r.log_record.body for r in capture.otel_logs()) == [
        "from a library",
        "from the app",
    ]


def test_a_record_the_app_console_filtered_out_is_still_ours(
    capture: Capture, capsys: pytest.CaptureFixture[str]
) -> None:
    """A named logger's console at WARNING: its INFO records were not printed by it, so the
    JSON (the root is still ours) prints them; nothing is lost from the console."""
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "level": "WARNING"}
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"c": handler},
            "loggers": {"app": {"handlers": ["c"], "level": "INFO"}},
        }
    )
    in_a_span(("app", logging.INFO, "info"), ("app", logging.WARNING, "warning"))
    assert capsys.readouterr().err.splitlines() == ["warning"]
    assert [r["message"] for r in capture.records()] == ["info"]


def test_the_app_format_can_show_the_trace_id_and_our_json_does_not_carry_it(
    capture: Capture, capsys: pytest.CaptureFixture[str]
) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"f": {"format": "%(otelTraceID)s %(otelSpanID)s %(message)s"}},
            "handlers": {"file": {"class": "logging.StreamHandler", "formatter": "f"}},
            "loggers": {"app": {"handlers": ["file"], "level": "INFO"}},
        }
    )
    ids = in_a_span(("app", logging.INFO, "hello"))
    line = capsys.readouterr().err.strip()
    assert line == f"{ids.trace_id:032x} {ids.span_id:016x} hello"
    (record,) = capture.otel_logs()
    assert not {"otelTraceID", "otelSpanID"} & set(record.log_record.attributes or {})


def test_records_written_during_our_export_are_dropped(
    capture: Capture, capsys: pytest.CaptureFixture[str]
) -> None:
    only_ours(capture)
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG, format="%(message)s")
    token = context.attach(context.set_value(context._SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        logging.getLogger("urllib3.connectionpool").debug('"POST /v1/logs HTTP/1.1" 200')
    finally:
        context.detach(token)
    logging.getLogger("app").info("the app's")
    assert capsys.readouterr().err.splitlines()[-1:] == ["the app's"]
    assert "POST" not in capsys.readouterr().err
    assert [r.log_record.body for r in capture.otel_logs()] == ["the app's"]


def test_without_otel_tdd_configured_the_functions_are_plain(
    app_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with capture_telemetry():
        pass  # configured, then shut down: the guard lets go of its handler
    root = logging.getLogger()
    root.handlers.clear()
    logging.basicConfig(stream=sys.stderr, format="%(message)s", level=logging.INFO)
    logging.getLogger("app").info("plain")
    assert not [h for h in root.handlers if isinstance(h, JsonLogHandler)]
    assert capsys.readouterr().err == "plain\n"


def test_our_and_the_sdks_loggers_survive_disable_existing_loggers(capture: Capture) -> None:
    ours_logger = logging.getLogger("otel_tdd.auto")
    sdk_logger = logging.getLogger("opentelemetry.sdk._shared_internal")
    apps = logging.getLogger("some.library")
    logging.config.dictConfig({"version": 1, "root": {"level": "INFO"}})  # disables the rest
    assert not ours_logger.disabled and not sdk_logger.disabled
    assert apps.disabled  # the app's choice holds for everything else


def test_logging_set_up_before_configure_gets_the_same_rules(
    app_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """An app that calls otel_tdd.configure() after its own basicConfig."""
    logging.getLogger().handlers[:] = []
    logging.basicConfig(stream=sys.stderr, format="%(message)s", level=logging.INFO)
    with capture_telemetry(log_level="INFO") as captured:
        logging.getLogger("app").info("once")
        assert [r["message"] for r in captured.records()] == []  # the app's console has it
        assert [r.log_record.body for r in captured.otel_logs()] == ["once"]
    err = capsys.readouterr().err
    assert err.count("once") == 1 and "set up before otel-tdd was configured" in err


def test_at_debug_our_export_traffic_is_dropped_without_any_app_configuration(
    app_logging: None,
) -> None:
    with capture_telemetry(log_level="DEBUG") as captured:
        token = context.attach(context.set_value(context._SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            logging.getLogger("urllib3.connectionpool").debug('"POST /v1/logs HTTP/1.1" 200')
            logging.getLogger("urllib3.connectionpool").warning("Retrying the export")
        finally:
            context.detach(token)
        assert [r["message"] for r in captured.records()] == ["Retrying the export"]
