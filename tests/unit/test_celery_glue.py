"""otel_tdd.integrations.celery: a worker's logging setup keeps our handler (in one process).

The end-to-end proof (a real worker, Redis and Collector) is
tests/compat/test_celery_worker.py; these pin the receiver's rules fast.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from otel_tdd.integrations import celery as glue
from otel_tdd.structured_logging import JsonLogHandler
from otel_tdd.testing import Capture, capture_telemetry


@pytest.fixture
def capture() -> Iterator[Capture]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with capture_telemetry(log_level="INFO") as captured:
        yield captured
    root.handlers[:] = handlers
    root.setLevel(level)


def worker_logging_setup(loglevel: str) -> None:
    """What ``celery worker -l LEVEL`` runs at start (Celery's own code)."""
    from celery import Celery
    from celery.app.log import Logging

    glue.install(keep_logging=True)
    app = Celery("glue-test")
    Logging._setup = False  # a fresh worker: not set up yet
    app.log.setup_logging_subsystem(loglevel=loglevel)


def test_the_worker_keeps_our_handler_and_applies_its_level(capture: Capture) -> None:
    from celery import signals

    seen: list[Any] = []

    def after_setup(logger: logging.Logger, **_: Any) -> None:
        seen.append(logger)

    signals.after_setup_logger.connect(after_setup, weak=False)
    try:
        worker_logging_setup("WARNING")
    finally:
        signals.after_setup_logger.disconnect(after_setup)
    root = logging.getLogger()
    assert [h for h in root.handlers if isinstance(h, JsonLogHandler)]
    assert not [h for h in root.handlers if type(h) is logging.StreamHandler]  # no hijack
    assert root.level == logging.WARNING
    assert seen == [root]  # apps that hook after_setup_logger still get called
    logging.getLogger("celery.worker").warning("worker line")
    assert [r["message"] for r in capture.records()] == ["worker line"]


def test_an_app_that_receives_setup_logging_keeps_its_own(capture: Capture) -> None:
    from celery import signals

    calls: list[Any] = []

    def apps_own(**kwargs: Any) -> None:
        calls.append(kwargs["loglevel"])

    signals.setup_logging.connect(apps_own, weak=False)
    try:
        root = logging.getLogger()
        root.setLevel(logging.INFO)
        worker_logging_setup("ERROR")
    finally:
        signals.setup_logging.disconnect(apps_own)
    assert calls == [logging.ERROR]
    assert root.level == logging.INFO  # ours did nothing: the app's receiver decides
