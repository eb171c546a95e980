"""The servers' own log lines (uvicorn, gunicorn, Django, Streamlit) as our JSON, not plain text.

Right after a server sets its logging up, :func:`hand_over` puts a :class:`ToJson`
in place of each of its console handlers: the record goes to the root's JSON
handler, or, when there is none, to the console it replaced. The hooks fire on
import, so a process that never imports a server pays nothing. docs/logging.md,
"Servers' own log lines".
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from otel_tdd._import_hooks import when_imported
from otel_tdd.logs import guard
from otel_tdd.logs.exception_spans import in_recording_span
from otel_tdd.logs.handler import JsonLogHandler

__all__ = ["FRAMEWORK_LOGGERS", "ToJson", "hand_over", "install", "set_enabled", "to_json"]

# The loggers each server configures with its own console handlers.
FRAMEWORK_LOGGERS: dict[str, tuple[str, ...]] = {
    "uvicorn.config": ("uvicorn", "uvicorn.error", "uvicorn.access"),
    "gunicorn.glogging": ("gunicorn.error", "gunicorn.access"),
    # DEFAULT_LOGGING: runserver's access lines, and the DEBUG console of `django`.
    "django.utils.log": ("django", "django.server"),
}
# (module, class, method) that ends each server's logging setup, and the module's
# default dictConfig, which is the server's and not the app's (logs.guard).
_SETUP_METHODS: tuple[tuple[str, str | None, str, str | None], ...] = (
    ("uvicorn.config", "Config", "configure_logging", "LOGGING_CONFIG"),
    ("gunicorn.glogging", "Logger", "setup", None),  # adds its handlers itself
    ("django.utils.log", None, "configure_logging", "DEFAULT_LOGGING"),  # a function
)
# Streamlit sets one logger up at a time: setup_formatter(logger), module-level.
_STREAMLIT_LOGGER = "streamlit.logger"
_STREAMLIT_HANDLER = "streamlit_console_handler"
_PATCHED = "_otel_tdd_hands_logs_over"
_install_lock = threading.Lock()
_installed = False
# OTEL_TDD_FRAMEWORK_LOGS as of the latest configure(); read per record.
_enabled = False


def set_enabled(enabled: bool) -> None:
    """configure() says whether framework lines go to the JSON (OTEL_TDD_FRAMEWORK_LOGS)."""
    global _enabled
    _enabled = enabled


def to_json() -> bool:
    """Whether the servers' lines go to the root's JSON handler now."""
    return _enabled and bool(_json_handlers())


def _json_handlers() -> list[logging.Handler]:
    """The root's JSON handlers now (configure() replaces them; shutdown() removes them)."""
    return [h for h in logging.getLogger().handlers if isinstance(h, JsonLogHandler)]


class ToJson(logging.Handler):
    """In place of a server's console handler: the root's JSON handler, else that console."""

    def __init__(self, console: logging.Handler, logger: logging.Logger | None = None) -> None:
        super().__init__(console.level)
        self.console = console
        # A logger that also propagates to the root (Django's `django`) reaches the
        # JSON there: forwarding here too would print it twice.
        self.propagates = logger is not None and _propagates_to_root(logger)
        # A console the app's own configuration made (its LOGGING, --log-config).
        self.apps = guard.is_apps(console)

    def handle(self, record: logging.LogRecord) -> bool:
        targets = _json_handlers() if _enabled else []
        if not targets:
            return self.console.handle(record)
        # uvicorn logs an unhandled exception after the request's span ended: in the
        # context of the span that recorded it, the record carries its trace.
        exception = record.exc_info[1] if record.exc_info else None
        with _in_recording_span(exception):
            return self._forward(record, targets)

    def _forward(self, record: logging.LogRecord, targets: list[logging.Handler]) -> bool:
        # The console prints as without us when it is the app's, or when the app took the
        # root's console (basicConfig(format=...)): then the server's line keeps the
        # server's format beside the app's lines, and our handler exports it over OTLP
        # without a JSON line (guard.app_owns_record).
        printed = self.apps or guard.app_owns_console()
        if printed:
            self.console.handle(record)
        # The level OTEL_TDD_LOG_LEVEL set on the root is the JSON's minimum; the
        # server's logger levels decide only what the server emits at all; the
        # console's own filters (Django's require_debug_true) whether it prints.
        if self.propagates or record.levelno < logging.getLogger().level:
            return False
        if not printed and (record.levelno < self.console.level or not self.console.filter(record)):
            return False
        if not self.filter(record):
            return False
        # uvicorn's `color_message` (its line with ANSI colour codes) is meant for its
        # console formatter: escape-code noise in a JSON `data` block.
        record.__dict__.pop("color_message", None)
        for target in targets:
            target.handle(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:  # handle() does the work
        self.handle(record)

    def close(self) -> None:
        self.console.close()
        super().close()


def _in_recording_span(exception: BaseException | None) -> Any:
    if exception is None:
        return contextlib.nullcontext()
    return in_recording_span(exception)


def _propagates_to_root(logger: logging.Logger) -> bool:
    current: logging.Logger | None = logger
    while current is not None and current is not logging.getLogger():
        if not current.propagate:
            return False
        current = current.parent
    return True


def _hand_over_logger(logger: logging.Logger) -> bool:
    """Put a :class:`ToJson` in place of each console handler of ``logger``."""
    replaced = False
    for index, handler in enumerate(list(logger.handlers)):
        if type(handler) is logging.StreamHandler:  # a FileHandler is a subclass: kept
            forward = ToJson(handler, logger)
            logger.handlers[index] = forward
            if getattr(logger, _STREAMLIT_HANDLER, None) is handler:
                # Streamlit removes this attribute's handler before adding a new one
                # (update_formatter): it must name what is in the list now.
                setattr(logger, _STREAMLIT_HANDLER, forward)
            replaced = True
    return replaced


def hand_over(names: Iterable[str]) -> list[str]:
    """Put a :class:`ToJson` in place of each console handler of the named loggers;
    return the loggers changed."""
    return [name for name in names if _hand_over_logger(logging.getLogger(name))]


def _run_after(owner: object, name: str, then: Callable[..., object]) -> bool:
    """Wrap ``owner.name`` so that ``then`` gets its arguments after it ran; once.

    Runs inside the server's ``import``: a changed API (no such attribute) leaves
    its logging alone.
    """
    setup = getattr(owner, name, None)
    if setup is None or getattr(setup, _PATCHED, False):
        return False

    @functools.wraps(setup)
    def setup_then_hand_over(*args: Any, **kwargs: Any) -> Any:
        result = setup(*args, **kwargs)
        then(*args, **kwargs)
        return result

    setattr(setup_then_hand_over, _PATCHED, True)
    setattr(owner, name, setup_then_hand_over)
    return True


def _patch_server(
    class_name: str | None, method_name: str, default: str | None, module: ModuleType
) -> None:
    names = FRAMEWORK_LOGGERS[module.__name__]
    if default is not None and hasattr(module, default):
        guard.framework_default(getattr(module, default))
    owner = module if class_name is None else getattr(module, class_name, None)
    _run_after(owner, method_name, lambda *_, **__: hand_over(names))


def _patch_streamlit(module: ModuleType) -> None:
    if _run_after(module, "setup_formatter", _hand_over_logger):
        # Loggers Streamlit set up before this hook (its import sets up a few).
        for logger in getattr(module, "_loggers", {}).values():
            _hand_over_logger(logger)


def install() -> None:
    """Arrange for each server's console handlers to be handed over after its setup; once."""
    global _installed
    with _install_lock:
        if _installed:
            return
        _installed = True
    for module, class_name, method_name, default in _SETUP_METHODS:
        when_imported(module, functools.partial(_patch_server, class_name, method_name, default))
    when_imported(_STREAMLIT_LOGGER, _patch_streamlit)
