"""Celery glue for ``otel-tdd run``: the worker keeps our logging, its pool flushes.

Design notes: docs/auto-instrumentation.md, "Implementation notes".
"""

from __future__ import annotations

import functools
import logging
from types import ModuleType
from typing import Any

from otel_tdd import lifecycle
from otel_tdd._import_hooks import when_imported
from otel_tdd.logs import guard as logging_guard

__all__ = ["install"]

_installed = False


def install(*, keep_logging: bool) -> None:
    """Connect our receivers once Celery is imported; ``keep_logging``: our JSON
    handler is on the root logger (``OTEL_TDD_CAPTURE_LOGGING``)."""
    global _installed
    if _installed:
        return
    _installed = True
    when_imported("celery.app.log", functools.partial(_connect, keep_logging))


def _connect(keep_logging: bool, module: ModuleType) -> None:
    # Runs inside Celery's import: a changed API leaves Celery as it is.
    signals = getattr(module, "signals", None)
    if signals is None:
        return
    if keep_logging and hasattr(signals, "setup_logging"):
        signals.setup_logging.connect(
            functools.partial(_setup_logging, signals), weak=False, dispatch_uid=_UID
        )
    if hasattr(signals, "worker_process_shutdown"):
        signals.worker_process_shutdown.connect(_flush_pool_process, weak=False)


_UID = "otel_tdd.integrations.celery"


def _setup_logging(
    signals: ModuleType,
    loglevel: int | str | None = None,
    logfile: str | None = None,
    format: str | None = None,  # Celery's keyword name
    colorize: bool | None = None,
    **_: Any,
) -> None:
    if len(getattr(signals.setup_logging, "receivers", ())) > 1:
        return  # the app receives it too: its logging is its own, as without us
    root = logging.getLogger()
    if loglevel:
        root.setLevel(loglevel)
    if logfile:
        file_handler = logging.FileHandler(logfile)
        if format:
            file_handler.setFormatter(logging.Formatter(format))
        root.addHandler(file_handler)
        logging_guard.after_config("celery --logfile")
    # Celery sends these after its own setup only; apps hook them to add handlers.
    options = {"loglevel": loglevel, "logfile": logfile, "format": format, "colorize": colorize}
    signals.after_setup_logger.send(sender=None, logger=root, **options)
    task_logger = logging.getLogger("celery.task")
    signals.after_setup_task_logger.send(sender=None, logger=task_logger, **options)


def _flush_pool_process(**_: Any) -> None:
    lifecycle.shutdown()
