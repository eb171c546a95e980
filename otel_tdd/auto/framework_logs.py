"""uvicorn's and gunicorn's own log lines as our JSON, not plain text beside it.

Both servers set their logging up at run time and give their loggers their own
stream handlers with ``propagate = False`` (uvicorn through
``logging.config.dictConfig`` in ``Config.configure_logging``, gunicorn in
``glogging.Logger.setup``), so "Application startup complete", the access log
and gunicorn's worker lines bypass the root logger's JSON handler. Right after
that setup runs, :func:`hand_to_root` gives those loggers back to the root:
their console handlers go, ``propagate`` comes back, the levels they chose stay.
A handler writing to a file the user asked for (``--log-config``,
``--error-logfile``) is not a plain ``StreamHandler`` and stays.

The hooks fire on import (``import_hooks.when_imported``), so a process that
never imports uvicorn or gunicorn pays nothing.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

__all__ = ["FRAMEWORK_LOGGERS", "DropColorMessage", "hand_to_root", "install"]

# The loggers each server configures with its own console handlers.
FRAMEWORK_LOGGERS: dict[str, tuple[str, ...]] = {
    "uvicorn.config": ("uvicorn", "uvicorn.error", "uvicorn.access"),
    "gunicorn.glogging": ("gunicorn.error", "gunicorn.access"),
}
# (module, class, method) that ends each server's logging setup.
_SETUP_METHODS: tuple[tuple[str, str, str], ...] = (
    ("uvicorn.config", "Config", "configure_logging"),
    ("gunicorn.glogging", "Logger", "setup"),
)
_PATCHED = "_otel_tdd_hands_logs_to_root"
_install_lock = threading.Lock()
_installed = False


def _root_writes_json() -> bool:
    """Whether configure() put our JSON handler on the root logger (now, not at patch time)."""
    module = sys.modules.get("otel_tdd.structured_logging")
    handler_type = getattr(module, "JsonLogHandler", None)
    return handler_type is not None and any(
        isinstance(h, handler_type) for h in logging.getLogger().handlers
    )


class DropColorMessage(logging.Filter):
    """uvicorn adds ``color_message``, its line with ANSI colour codes, to some records:
    meant for its console formatter, escape-code noise in a JSON ``data`` block."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)
        return True


def hand_to_root(names: Iterable[str]) -> list[str]:
    """Route the named loggers through the root logger; return those changed."""
    changed = []
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropColorMessage) for f in logger.filters):
            logger.addFilter(DropColorMessage())
        console = [h for h in logger.handlers if type(h) is logging.StreamHandler]
        for handler in console:
            logger.removeHandler(handler)
        if console or not logger.propagate:
            logger.propagate = True
            changed.append(name)
    return changed


def _after(method: Callable[..., Any], names: tuple[str, ...]) -> Callable[..., Any]:
    @functools.wraps(method)
    def setup_then_hand_over(*args: Any, **kwargs: Any) -> Any:
        result = method(*args, **kwargs)
        # Only while the root writes our JSON: after shutdown() or with
        # OTEL_TDD_CAPTURE_LOGGING off, the server's own handlers are all it has.
        if _root_writes_json():
            hand_to_root(names)
        return result

    setattr(setup_then_hand_over, _PATCHED, True)
    return setup_then_hand_over


def _patch(module: ModuleType, class_name: str, method_name: str) -> None:
    """Runs inside the server's ``import``: a changed API leaves its logging alone."""
    cls = getattr(module, class_name, None)
    method = getattr(cls, method_name, None)
    if cls is None or method is None or getattr(method, _PATCHED, False):
        return
    setattr(cls, method_name, _after(method, FRAMEWORK_LOGGERS[module.__name__]))


def install() -> None:
    """Arrange for each server's loggers to be handed to the root after its setup; once."""
    global _installed
    from otel_tdd.auto.import_hooks import when_imported

    with _install_lock:
        if _installed:
            return
        _installed = True
    for module, class_name, method_name in _SETUP_METHODS:
        when_imported(module, functools.partial(_patch_hook, class_name, method_name))


def _patch_hook(class_name: str, method_name: str, module: ModuleType) -> None:
    _patch(module, class_name, method_name)
