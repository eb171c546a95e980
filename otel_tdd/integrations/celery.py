"""Celery glue for ``otel-tdd run``: the worker keeps our logging, its pool flushes.

Two things a Celery worker does that lose telemetry, each answered through Celery's
own signals (connected when ``celery.app.log`` is imported, so a process without
Celery pays nothing; the contrib instrumentor makes the spans):

- Unless someone receives ``setup_logging``, the worker empties the root logger's
  handlers (``worker_hijack_root_logger``), our JSON handler with them, adds its
  own console handler and redirects stdout to a logger: no JSON, no OTLP log
  records, and our JSON lines would loop through that logger. Receiving the signal
  is Celery's documented way to keep one's own logging; we apply what the command
  line asked (``-l`` on the root logger, ``--logfile`` as a file handler in Celery's
  format), send ``after_setup_logger``/``after_setup_task_logger`` as Celery would
  (apps hook them), and the worker's and tasks' records reach our handler. An app
  that receives ``setup_logging`` itself keeps its own logging: we then do nothing.
  A task's ``print`` stays on stdout (Celery would have logged it as a WARNING).
- Prefork pool processes leave through ``os._exit``: no ``atexit``, so the spans
  and records still queued in the SDK's batch processors of a child would be lost
  at every worker shutdown. ``worker_process_shutdown`` runs in the child just
  before that exit: we flush and shut the providers down there.
"""

from __future__ import annotations

import functools
import logging
from types import ModuleType
from typing import Any

__all__ = ["install"]

_installed = False


def install(*, keep_logging: bool) -> None:
    """Connect our receivers once Celery is imported; ``keep_logging``: our JSON
    handler is on the root logger (``OTEL_TDD_CAPTURE_LOGGING``)."""
    global _installed
    if _installed:
        return
    _installed = True
    from otel_tdd.auto.import_hooks import when_imported

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
        from otel_tdd.logs import guard as logging_guard

        logging_guard.after_config("celery --logfile")
    # Celery sends these after its own setup only; apps hook them to add handlers.
    options = {"loglevel": loglevel, "logfile": logfile, "format": format, "colorize": colorize}
    signals.after_setup_logger.send(sender=None, logger=root, **options)
    task_logger = logging.getLogger("celery.task")
    signals.after_setup_task_logger.send(sender=None, logger=task_logger, **options)


def _flush_pool_process(**_: Any) -> None:
    from otel_tdd.sdk import shutdown

    shutdown()
