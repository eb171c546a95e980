"""When the app configures logging itself: its choices kept, our export never lost.

``basicConfig``, ``dictConfig`` and ``fileConfig`` are wrapped so the app's call runs
as without us, then our handler is back on the root logger, last; a record an app
console wrote is exported over OTLP only. docs/logging.md, "Apps that configure logging".
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
from types import ModuleType
from typing import Any

from opentelemetry import context, trace

from otel_tdd._import_hooks import when_imported
from otel_tdd._otel_private import SUPPRESS_INSTRUMENTATION_KEY
from otel_tdd.logs.handler import JsonLogHandler

__all__ = [
    "CORRELATION_FIELDS",
    "after_config",
    "app_owns_console",
    "app_owns_record",
    "framework_default",
    "install",
    "is_apps",
    "uninstall",
]

# The record attributes an app's format may use, as opentelemetry-instrumentation-logging
# names them (formats written for opentelemetry-instrument work unchanged).
CORRELATION_FIELDS = ("otelTraceID", "otelSpanID", "otelTraceSampled", "otelServiceName")
_SUPPRESS_KEY = SUPPRESS_INSTRUMENTATION_KEY
# Set on a record by an app console handler that wrote it; popped by our handler.
_WRITTEN = "_otel_tdd_on_app_console"
_PATCHED = "_otel_tdd_logging_guard"
# Set on a handler that a framework's own default configuration created.
_FRAMEWORKS = "_otel_tdd_framework_default"
# The frameworks' default configurations (uvicorn's LOGGING_CONFIG, Django's
# DEFAULT_LOGGING), by identity: logs.framework registers them on import.
_framework_defaults: list[object] = []


class _State:
    """The handler we keep on the root logger, and what the app's configuration did."""

    def __init__(self) -> None:
        self.handler: JsonLogHandler | None = None
        self.service_name = ""
        # The app put a console handler on the root logger: stdlib records are its to print.
        self.root_console = False
        self.warned = False
        self.exporting = False
        self.lock = threading.Lock()


_state = _State()


class _Correlate(logging.Filter):
    """Appended last to an app's handler: runs only when every other filter let the
    record through, so it marks exactly the records that handler writes."""

    def __init__(self, console: bool) -> None:
        super().__init__()
        self.console = console

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO and _exporting_now():
            return False
        attributes = record.__dict__
        if "otelTraceID" not in attributes:
            span_context = trace.get_current_span().get_span_context()
            valid = span_context.is_valid  # outside a span: "0", as the instrumentor writes
            attributes["otelTraceID"] = format(span_context.trace_id, "032x") if valid else "0"
            attributes["otelSpanID"] = format(span_context.span_id, "016x") if valid else "0"
            attributes["otelTraceSampled"] = span_context.trace_flags.sampled
            attributes["otelServiceName"] = _state.service_name
        if self.console:
            attributes[_WRITTEN] = True
        return True


def _exporting_now() -> bool:
    """True inside the SDK's own export: the DEBUG records of its HTTP client (urllib3's
    "POST /v1/logs" lines, once the root is at DEBUG) are our traffic, not the app's:
    neither printed nor exported (each export would log the next). Warnings (a retry,
    a refused connection) still are."""
    return bool(context.get_value(_SUPPRESS_KEY))


class _NotOurTraffic(logging.Filter):
    """On our handler once DEBUG records can reach it (a filter costs every record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # getattr: a hand-built record may lack levelno; a filter must not raise into the app.
        return getattr(record, "levelno", logging.ERROR) >= logging.INFO or not _exporting_now()


def _drop_our_traffic(handler: JsonLogHandler) -> None:
    if not any(isinstance(f, _NotOurTraffic) for f in handler.filters):
        handler.addFilter(_NotOurTraffic())


def app_owns_record(record: logging.LogRecord) -> bool:
    """Called by our handler for each record once the app configured logging: True when
    the app's console handlers have it (written, or the root's console is theirs), so it
    goes over OTLP only. Removes what :class:`_Correlate` added, which is no ``data``."""
    attributes = record.__dict__
    written = attributes.pop(_WRITTEN, False)
    if "otelTraceID" in attributes:
        for name in CORRELATION_FIELDS:
            attributes.pop(name, None)
    return written or _state.root_console


def app_owns_console() -> bool:
    """True once the app put a console handler on the root logger: the console is the
    app's, so a server's own lines are printed by the server's console as without us."""
    return _state.root_console


def is_apps(handler: logging.Handler) -> bool:
    """True for a handler the app's own configuration made (we correlate and mark it):
    its look is the app's choice, which logs.framework does not replace."""
    return any(isinstance(f, _Correlate) for f in handler.filters)


def framework_default(config: object) -> None:
    """``config`` is a framework's own default logging configuration (uvicorn's
    ``LOGGING_CONFIG``, Django's ``DEFAULT_LOGGING``): nobody chose it, so the handlers
    it makes are the framework's (logs.framework hands them to our JSON), not the app's."""
    with _state.lock:
        if not any(config is known for known in _framework_defaults):
            _framework_defaults.append(config)


def _is_framework_default(args: tuple[Any, ...]) -> bool:
    return bool(args) and any(args[0] is known for known in _framework_defaults)


def _is_console(handler: logging.Handler) -> bool:
    if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
        return False
    stream = handler.stream
    return stream is not None and stream in (
        sys.stdout,
        sys.stderr,
        sys.__stdout__,
        sys.__stderr__,
    )


def _loggers() -> list[logging.Logger]:
    existing = list(logging.Logger.manager.loggerDict.values())  # other threads may add
    return [logging.getLogger(), *(lg for lg in existing if isinstance(lg, logging.Logger))]


def after_config(source: str) -> None:
    """Our handler back on the root logger, last; the app's handlers correlated and marked."""
    handler = _state.handler
    if handler is None:
        return
    root = logging.getLogger()
    if handler in root.handlers:
        root.removeHandler(handler)
    root.addHandler(handler)  # last: the app's root handlers mark a record before ours sees it
    root_console = False
    for logger in _loggers():
        for app_handler in logger.handlers:
            if app_handler is handler or not _is_app_handler(app_handler):
                continue
            console = _is_console(app_handler)
            root_console = root_console or (console and logger is root)
            if not any(isinstance(f, _Correlate) for f in app_handler.filters):
                app_handler.addFilter(_Correlate(console))
    _state.root_console = root_console
    _drop_our_traffic(handler)
    handler.app_owns_record = app_owns_record
    _enable_our_loggers()
    if root_console and not _state.warned:
        _state.warned = True
        export = (
            "they are still exported over OTLP with their trace context"
            if _state.exporting
            else "OTLP log export is off"
        )
        print(
            f"otel-tdd: the app's logging configuration ({source}) put a console handler on "
            "the root logger: log lines are written in the app's format instead of as JSON "
            f"on stdout; {export}; its format may use %(otelTraceID)s and %(otelSpanID)s "
            "(docs/logging.md, 'Apps that configure logging')",
            file=sys.stderr,
            flush=True,
        )


def _enable_our_loggers() -> None:
    """``disable_existing_loggers`` (the default of dictConfig and fileConfig) silences every
    logger the app's configuration does not name, ours and the SDK's with them: an export
    failure would then pass unsaid. Those few stay on; the app's choice holds for the rest."""
    for logger in _loggers():
        if logger.disabled and logger.name.startswith(("otel_tdd", "opentelemetry")):
            logger.disabled = False


def _app_consoles() -> bool:
    return any(
        _is_app_handler(h) and _is_console(h) for logger in _loggers() for h in logger.handlers
    )


def _is_app_handler(handler: logging.Handler) -> bool:
    # Our own handlers (the JSON one, logs.framework's ToJson) are otel-tdd's, not the app's;
    # those of a framework's default configuration are the framework's.
    return not type(handler).__module__.startswith("otel_tdd.") and not getattr(
        handler, _FRAMEWORKS, False
    )


def _all_handlers() -> list[logging.Handler]:
    return [h for logger in _loggers() for h in logger.handlers]


# basicConfig keywords that choose no output: a call with only these keeps our JSON.
_LEVEL_ONLY = frozenset({"level", "force"})


def _level_only(root: logging.Logger, handler: JsonLogHandler, kwargs: dict[str, Any]) -> None:
    """``basicConfig(level=...)`` (``force=True`` too) names no format, stream or handler:
    the app wants its level, not a look, so it gets the level and keeps our JSON as its
    console. As stdlib's, the call does nothing when the root already has another handler
    (unless forced, which removes those)."""
    others = [h for h in root.handlers if h is not handler]
    if others and not kwargs.get("force"):
        return
    for other in others:
        root.removeHandler(other)
        other.close()
    if kwargs.get("level") is not None:
        root.setLevel(kwargs["level"])


def _wrap(owner: ModuleType, name: str, *, clear_root: bool = False) -> None:
    """Wrap ``owner.name`` (a logging configuration function) once."""
    original = getattr(owner, name, None)
    if original is None or getattr(original, _PATCHED, False):
        return
    source = f"{owner.__name__}.{name}"

    @functools.wraps(original)
    def configure_then_keep_ours(*args: Any, **kwargs: Any) -> Any:
        handler = _state.handler
        if handler is None:
            return original(*args, **kwargs)
        root = logging.getLogger()
        if clear_root and not args and kwargs.keys() <= _LEVEL_ONLY:
            _level_only(root, handler, kwargs)
            after_config(source)
            return None
        if clear_root and handler in root.handlers:
            # basicConfig does nothing on a root logger that has a handler: as without us.
            root.removeHandler(handler)
        if not clear_root and _is_framework_default(args):
            before = _all_handlers()  # held: ids stay unique while compared
            try:
                return original(*args, **kwargs)
            finally:
                seen = {id(h) for h in before}
                for made in _all_handlers():
                    if id(made) not in seen:
                        setattr(made, _FRAMEWORKS, True)
                after_config(source)
        try:
            return original(*args, **kwargs)
        finally:
            after_config(source)

    setattr(configure_then_keep_ours, _PATCHED, True)
    setattr(owner, name, configure_then_keep_ours)


def _wrap_logging_config(module: ModuleType) -> None:
    _wrap(module, "dictConfig")
    _wrap(module, "fileConfig")


def install(handler: JsonLogHandler, *, exporting: bool, debug: bool = False) -> None:
    """Keep ``handler`` on the root logger through the app's logging configuration;
    ``exporting``: OTLP logs are on (what the warning can promise); ``debug``: the root
    starts at DEBUG (our export's own records must be kept out)."""
    resource = getattr(trace.get_tracer_provider(), "resource", None)
    with _state.lock:
        first = _state.handler is None and not getattr(logging.basicConfig, _PATCHED, False)
        _state.handler = handler
        _state.service_name = str(resource.attributes.get("service.name", "")) if resource else ""
        _state.exporting = exporting
        _state.root_console = False
    if first:
        _wrap(logging, "basicConfig", clear_root=True)
        when_imported("logging.config", _wrap_logging_config)
    if debug:
        _drop_our_traffic(handler)
    if _app_consoles():
        # configure() called after the app set its logging up: the same rules apply.
        after_config("set up before otel-tdd was configured")


def uninstall(handler: JsonLogHandler) -> None:
    """After shutdown(): the app's configuration calls are plain again."""
    with _state.lock:
        if _state.handler is handler:
            _state.handler = None
            _state.root_console = False
            handler.app_owns_record = None
            for own in [f for f in handler.filters if isinstance(f, _NotOurTraffic)]:
                handler.removeFilter(own)
