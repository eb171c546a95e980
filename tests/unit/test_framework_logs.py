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


def test_uvicorn_startup_and_access_lines_become_json() -> None:
    stream = io.BytesIO()
    otel_tdd.configure(service_name="svc", _hooks=sdk.TestHooks(stream=stream))
    import uvicorn

    uvicorn.Config(app="nowhere:app")  # its __init__ runs configure_logging (dictConfig)
    for name in ("uvicorn", "uvicorn.access"):
        logger = logging.getLogger(name)
        assert logger.propagate and not logger.handlers, (name, logger.handlers)
    logging.getLogger("uvicorn.error").info(
        "Application startup complete.", extra={"color_message": "\x1b[32mcomplete\x1b[0m"}
    )
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5555", "GET", "/tasks/1", "1.1", 200
    )
    records = _records(stream)
    assert [(r["logger"], r["message"]) for r in records] == [
        ("uvicorn.error", "Application startup complete."),
        ("uvicorn.access", '127.0.0.1:5555 - "GET /tasks/1 HTTP/1.1" 200'),
    ]
    assert all("correlation_id" in r and "context" in r for r in records)  # our record shape
    assert records[0]["data"] == {}  # uvicorn's colour-coded copy of the line is dropped


def test_gunicorn_error_log_becomes_json_and_its_level_stays() -> None:
    stream = io.BytesIO()
    otel_tdd.configure(_hooks=sdk.TestHooks(stream=stream))
    from gunicorn.config import Config
    from gunicorn.glogging import Logger

    config = Config()
    config.set("loglevel", "warning")
    server_log = Logger(config)  # __init__ runs setup(cfg)
    error_log = logging.getLogger("gunicorn.error")
    assert error_log.propagate and not [
        h for h in error_log.handlers if type(h) is logging.StreamHandler
    ]
    server_log.info("Booting worker with pid: %s", 42)  # below gunicorn's level: dropped
    server_log.warning("Worker timeout (pid:%s)", 42)
    records = _records(stream)
    assert [(r["logger"], r["level"], r["message"]) for r in records] == [
        ("gunicorn.error", "WARNING", "Worker timeout (pid:42)")
    ]


def test_nothing_is_handed_over_when_the_root_does_not_write_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    otel_tdd.configure(_hooks=sdk.TestHooks(stream=io.BytesIO()))  # installs the hooks
    otel_tdd.shutdown()
    monkeypatch.setenv("OTEL_TDD_CAPTURE_LOGGING", "false")
    otel_tdd.configure()
    import uvicorn

    uvicorn.Config(app="nowhere:app")
    logger = logging.getLogger("uvicorn")
    # Without our JSON on the root, uvicorn's own console handler is all it has: kept.
    assert not logger.propagate
    assert [type(h) for h in logger.handlers] == [logging.StreamHandler]


def test_the_knob_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TDD_FRAMEWORK_LOGS", "false")
    assert (
        otel_tdd.configure(_hooks=sdk.TestHooks(stream=io.BytesIO())).settings.framework_logs
        is False
    )


def test_a_log_file_handler_stays_and_a_console_one_goes(tmp_path: Path) -> None:
    logger = logging.getLogger("test.framework")
    file_handler = logging.FileHandler(tmp_path / "server.log")
    logger.handlers[:] = [logging.StreamHandler(), file_handler]
    logger.propagate = False
    try:
        assert framework_logs.hand_to_root(["test.framework"]) == ["test.framework"]
        assert logger.handlers == [file_handler] and logger.propagate
        assert framework_logs.hand_to_root(["test.framework"]) == []  # already handed over
    finally:
        file_handler.close()
