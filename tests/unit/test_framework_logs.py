"""uvicorn's and gunicorn's own loggers handed to the root: their lines become our JSON."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

import otel_tdd
from otel_tdd import lifecycle
from otel_tdd.logs import framework as framework_logs
from otel_tdd.logs import guard as logging_guard
from otel_tdd.structured_logging import JsonLogHandler
from otel_tdd.testing import Capture, capture_telemetry, reset

NAMES = [name for names in framework_logs.FRAMEWORK_LOGGERS.values() for name in names]


@pytest.fixture(autouse=True)
def restored_loggers() -> Iterator[None]:
    """Each test leaves the servers' loggers as it found them (they are process-wide)."""
    saved = {
        name: (
            list(logging.getLogger(name).handlers),
            list(logging.getLogger(name).filters),
            logging.getLogger(name).propagate,
        )
        for name in [*NAMES, "test.framework"]
    }
    reset()
    yield
    reset()
    for name, (handlers, filters, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.filters[:] = filters
        logger.propagate = propagate


def _records(stream: io.BytesIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _uvicorn_config(**options: Any) -> None:
    import uvicorn

    uvicorn.Config(app="nowhere:app", **options)  # its __init__ runs configure_logging


def _uvicorn_lines() -> None:
    logging.getLogger("uvicorn.error").info(
        "Application startup complete.", extra={"color_message": "\x1b[32mcomplete\x1b[0m"}
    )
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5555", "GET", "/tasks/1", "1.1", 200
    )


def test_uvicorn_startup_and_access_lines_become_json_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = io.BytesIO()
    otel_tdd.configure(service_name="svc", _hooks=lifecycle.TestHooks(stream=stream))
    _uvicorn_config()
    for name in ("uvicorn", "uvicorn.access"):
        logger = logging.getLogger(name)
        assert [type(h) for h in logger.handlers] == [framework_logs.ToJson], name
        assert not logger.propagate  # as uvicorn set it: the root does not see it twice
    _uvicorn_lines()
    records = _records(stream)
    assert [(r["logger"], r["message"]) for r in records] == [
        ("uvicorn.error", "Application startup complete."),
        ("uvicorn.access", '127.0.0.1:5555 - "GET /tasks/1 HTTP/1.1" 200'),
    ]
    assert all("correlation_id" in r and "context" in r for r in records)  # our record shape
    assert records[0]["data"] == {}  # uvicorn's colour-coded copy of the line is dropped
    assert capsys.readouterr().err == ""  # and nothing on uvicorn's console


def test_uvicorn_no_access_log_stays_off() -> None:
    stream = io.BytesIO()
    otel_tdd.configure(_hooks=lifecycle.TestHooks(stream=stream))
    _uvicorn_config(access_log=False)
    _uvicorn_lines()
    assert [r["logger"] for r in _records(stream)] == ["uvicorn.error"]


def test_otel_tdd_log_level_is_the_minimum_for_server_lines_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TDD_LOG_LEVEL", "WARNING")
    stream = io.BytesIO()
    otel_tdd.configure(_hooks=lifecycle.TestHooks(stream=stream))
    _uvicorn_config()
    _uvicorn_lines()
    logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
    assert [r["message"] for r in _records(stream)] == ["Invalid HTTP request received."]


def test_gunicorn_error_log_becomes_json_and_its_level_stays() -> None:
    stream = io.BytesIO()
    otel_tdd.configure(_hooks=lifecycle.TestHooks(stream=stream))
    from gunicorn.config import Config
    from gunicorn.glogging import Logger

    config = Config()
    config.set("loglevel", "warning")
    server_log = Logger(config)  # __init__ runs setup(cfg)
    error_log = logging.getLogger("gunicorn.error")
    assert [type(h) for h in error_log.handlers] == [framework_logs.ToJson]
    server_log.info("Booting worker with pid: %s", 42)  # below gunicorn's level: dropped
    server_log.warning("Worker timeout (pid:%s)", 42)
    records = _records(stream)
    assert [(r["logger"], r["level"], r["message"]) for r in records] == [
        ("gunicorn.error", "WARNING", "Worker timeout (pid:42)")
    ]


@pytest.mark.parametrize(
    "variable", ["OTEL_TDD_FRAMEWORK_LOGS", "OTEL_TDD_CAPTURE_LOGGING"], ids=["knob", "capture"]
)
def test_turned_off_server_lines_go_to_the_servers_console_as_before(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str
) -> None:
    otel_tdd.configure(_hooks=lifecycle.TestHooks(stream=io.BytesIO()))  # the hooks are installed
    otel_tdd.shutdown()
    monkeypatch.setenv(variable, "false")
    stream = io.BytesIO()
    otel_tdd.configure(_hooks=lifecycle.TestHooks(stream=stream))
    assert getattr(otel_tdd.configure().settings, variable[9:].lower()) is False
    _uvicorn_config()
    _uvicorn_lines()
    assert stream.getvalue() == b""
    err = capsys.readouterr().err
    assert "INFO:     Application startup complete." in err, err


def test_after_shutdown_server_lines_go_to_the_console(capsys: pytest.CaptureFixture[str]) -> None:
    stream = io.BytesIO()
    otel_tdd.configure(_hooks=lifecycle.TestHooks(stream=stream))
    _uvicorn_config()
    otel_tdd.shutdown()  # the root's JSON handler is gone: nothing may vanish
    _uvicorn_lines()
    assert stream.getvalue() == b""
    assert "Application startup complete." in capsys.readouterr().err


def test_a_log_file_handler_stays_and_a_console_one_is_replaced(tmp_path: Path) -> None:
    logger = logging.getLogger("test.framework")
    console = logging.StreamHandler()
    file_handler = logging.FileHandler(tmp_path / "server.log")
    logger.handlers[:] = [console, file_handler]
    logger.propagate = False
    try:
        assert framework_logs.hand_over(["test.framework"]) == ["test.framework"]
        forward, kept = logger.handlers
        assert isinstance(forward, framework_logs.ToJson) and forward.console is console
        assert kept is file_handler and not logger.propagate
        assert framework_logs.hand_over(["test.framework"]) == []  # already handed over
    finally:
        file_handler.close()


def test_streamlit_loggers_become_json_and_stay_single_after_update_formatter() -> None:
    stream = io.BytesIO()
    otel_tdd.configure(_hooks=lifecycle.TestHooks(stream=stream))
    from streamlit import logger as streamlit_logger

    name = "streamlit.otel_tdd_test"
    log = streamlit_logger.get_logger(name)
    try:
        assert [type(h) for h in log.handlers] == [framework_logs.ToJson]
        streamlit_logger.update_formatter()  # Streamlit re-creates its console handlers
        assert [type(h) for h in log.handlers] == [framework_logs.ToJson]
        log.warning("Script compilation error")
        records = _records(stream)
        assert [(r["logger"], r["level"], r["message"]) for r in records] == [
            (name, "WARNING", "Script compilation error")
        ]
    finally:
        streamlit_logger._loggers.pop(name, None)
        log.handlers.clear()


# --- a server's default logging and the app's own, together (logging_guard) ------------------

APP_FORMAT = "APP %(levelname)s %(name)s %(message)s"


@pytest.fixture
def app_configures() -> Iterator[None]:
    """The root logger, the app's loggers and the guard's one warning as they were."""
    root = logging.getLogger()
    handlers, level, warned = list(root.handlers), root.level, logging_guard._state.warned
    logging_guard._state.warned = False
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging_guard._state.warned = warned
    app = logging.getLogger("app")
    app.handlers.clear()
    app.setLevel(logging.NOTSET)


def _only_ours_on_the_root() -> None:
    """The root as a fresh process has it under otel-tdd (pytest adds its own handlers,
    and basicConfig does nothing on a root logger that has some)."""
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if isinstance(h, JsonLogHandler)]


def _in_a_span(*lines: tuple[str, str]) -> str:
    with trace.get_tracer("t").start_as_current_span("request") as span:
        _uvicorn_lines()
        for name, message in lines:
            logging.getLogger(name).warning(message)
        return format(span.get_span_context().trace_id, "032x")


def _exported(capture: Capture) -> list[tuple[str, str]]:
    return sorted(
        (str(r.log_record.body), format(r.log_record.trace_id or 0, "032x"))
        for r in capture.otel_logs()
    )


def test_under_uvicorn_an_app_basic_config_owns_the_console_and_uvicorn_prints_its_own(
    app_configures: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The app's own console on the root (basicConfig(format=...)), as without otel-tdd:
    its lines in its format, uvicorn's in uvicorn's, none as JSON; all exported once."""
    with capture_telemetry(log_level="INFO") as capture:
        _uvicorn_config()  # uvicorn configures its logging, then imports the app...
        _only_ours_on_the_root()
        logging.basicConfig(format=APP_FORMAT)  # ...which sets up its own
        trace_id = _in_a_span(("app", "from the app"))
        assert capture.records() == []  # the console is the app's: no JSON line
        assert _exported(capture) == sorted(
            [
                ("Application startup complete.", trace_id),
                ('127.0.0.1:5555 - "GET /tasks/1 HTTP/1.1" 200', trace_id),
                ("from the app", trace_id),
            ]
        )
    out, err = capsys.readouterr()
    assert out.splitlines() == ['INFO:     127.0.0.1:5555 - "GET /tasks/1 HTTP/1.1" 200 OK']
    lines = err.splitlines()
    assert lines[0].startswith("otel-tdd: the app's logging configuration (logging.basicConfig)")
    assert lines[1:] == ["INFO:     Application startup complete.", "APP WARNING app from the app"]


def test_under_uvicorn_an_app_named_logger_keeps_its_format_and_uvicorn_lines_stay_json(
    app_configures: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with capture_telemetry(log_level="INFO") as capture:
        _uvicorn_config()
        logging.config.dictConfig(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "formatters": {"f": {"format": APP_FORMAT}},
                "handlers": {"c": {"class": "logging.StreamHandler", "formatter": "f"}},
                "loggers": {"app": {"handlers": ["c"], "level": "INFO"}},
            }
        )
        trace_id = _in_a_span(("app", "from the app"))
        assert [(r["logger"], r["message"], r["trace_id"]) for r in capture.records()] == [
            ("uvicorn.error", "Application startup complete.", trace_id),
            ("uvicorn.access", '127.0.0.1:5555 - "GET /tasks/1 HTTP/1.1" 200', trace_id),
        ]
        assert len(capture.otel_logs()) == 3
    assert capsys.readouterr() == ("", "APP WARNING app from the app\n")


def test_a_log_config_the_user_passes_to_uvicorn_keeps_its_console(
    app_configures: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """``uvicorn --log-config``: the user's choice, unlike uvicorn's LOGGING_CONFIG."""
    with capture_telemetry(log_level="INFO") as capture:
        _uvicorn_config(
            log_config={
                "version": 1,
                "disable_existing_loggers": False,
                "formatters": {"f": {"format": APP_FORMAT}},
                "handlers": {"c": {"class": "logging.StreamHandler", "formatter": "f"}},
                "loggers": {"uvicorn.access": {"handlers": ["c"], "propagate": False}},
            }
        )
        _uvicorn_lines()
        (forward,) = logging.getLogger("uvicorn.access").handlers
        assert isinstance(forward, framework_logs.ToJson) and forward.apps
        assert [r["logger"] for r in capture.records()] == ["uvicorn.error"]
        assert len(capture.otel_logs()) == 2  # the access line is still exported
    assert capsys.readouterr().err == (
        'APP INFO uvicorn.access 127.0.0.1:5555 - "GET /tasks/1 HTTP/1.1" 200\n'
    )


@pytest.fixture
def django_debug(app_configures: None) -> Iterator[None]:
    """Django settings with DEBUG=True (startproject's), undone afterwards."""
    from django.conf import settings
    from django.utils.functional import empty

    saved = settings._wrapped
    settings._wrapped = empty
    settings.configure(DEBUG=True)
    yield
    settings._wrapped = saved
    for name in ("django.request", "django.server"):
        logging.getLogger(name).disabled = False


def _django_lines() -> None:
    logging.getLogger("django.request").warning("Not Found: %s", "/missing")
    logging.getLogger("django.server").info('"%s" %s %s', "GET /hello HTTP/1.1", "200", "5")


def test_django_debug_lines_are_json_once_and_not_on_its_console(
    django_debug: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """DEFAULT_LOGGING gives `django` a console for DEBUG=True and `django.server` one:
    Django's, not the app's, so each record is our JSON once and nothing is plain."""
    from django.utils.log import configure_logging

    with capture_telemetry(log_level="INFO") as capture:
        configure_logging("logging.config.dictConfig", None)
        with trace.get_tracer("t").start_as_current_span("GET /missing") as span:
            _django_lines()
        trace_id = format(span.get_span_context().trace_id, "032x")
        assert [(r["logger"], r["message"], r["trace_id"]) for r in capture.records()] == [
            ("django.request", "Not Found: /missing", trace_id),
            ("django.server", '"GET /hello HTTP/1.1" 200 5', trace_id),
        ]
        assert len(capture.otel_logs()) == 2
    assert capsys.readouterr() == ("", "")


def test_django_logging_setting_with_its_own_console_keeps_its_format(
    django_debug: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """settings.LOGGING is the app's choice: its console on `django.server` stays."""
    from django.utils.log import configure_logging

    with capture_telemetry(log_level="INFO") as capture:
        configure_logging(
            "logging.config.dictConfig",
            {
                "version": 1,
                "disable_existing_loggers": False,
                "formatters": {"f": {"format": APP_FORMAT}},
                "handlers": {"c": {"class": "logging.StreamHandler", "formatter": "f"}},
                "loggers": {"django.server": {"handlers": ["c"], "propagate": False}},
            },
        )
        _django_lines()
        assert [r["logger"] for r in capture.records()] == ["django.request"]
        assert len(capture.otel_logs()) == 2
    assert capsys.readouterr() == ("", 'APP INFO django.server "GET /hello HTTP/1.1" 200 5\n')
