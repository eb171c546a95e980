"""uvicorn's and gunicorn's own loggers handed to the root: their lines become our JSON."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import otel_tdd
from otel_tdd import sdk
from otel_tdd.auto import framework_logs
from otel_tdd.testing import reset

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
    otel_tdd.configure(service_name="svc", _hooks=sdk.TestHooks(stream=stream))
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
    otel_tdd.configure(_hooks=sdk.TestHooks(stream=stream))
    _uvicorn_config(access_log=False)
    _uvicorn_lines()
    assert [r["logger"] for r in _records(stream)] == ["uvicorn.error"]


def test_otel_tdd_log_level_is_the_minimum_for_server_lines_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TDD_LOG_LEVEL", "WARNING")
    stream = io.BytesIO()
    otel_tdd.configure(_hooks=sdk.TestHooks(stream=stream))
    _uvicorn_config()
    _uvicorn_lines()
    logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
    assert [r["message"] for r in _records(stream)] == ["Invalid HTTP request received."]


def test_gunicorn_error_log_becomes_json_and_its_level_stays() -> None:
    stream = io.BytesIO()
    otel_tdd.configure(_hooks=sdk.TestHooks(stream=stream))
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
    otel_tdd.configure(_hooks=sdk.TestHooks(stream=io.BytesIO()))  # the hooks are installed
    otel_tdd.shutdown()
    monkeypatch.setenv(variable, "false")
    stream = io.BytesIO()
    otel_tdd.configure(_hooks=sdk.TestHooks(stream=stream))
    assert getattr(otel_tdd.configure().settings, variable[9:].lower()) is False
    _uvicorn_config()
    _uvicorn_lines()
    assert stream.getvalue() == b""
    err = capsys.readouterr().err
    assert "INFO:     Application startup complete." in err, err


def test_after_shutdown_server_lines_go_to_the_console(capsys: pytest.CaptureFixture[str]) -> None:
    stream = io.BytesIO()
    otel_tdd.configure(_hooks=sdk.TestHooks(stream=stream))
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
    otel_tdd.configure(_hooks=sdk.TestHooks(stream=stream))
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
