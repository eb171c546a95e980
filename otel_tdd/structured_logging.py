"""``StructuredLogger``: the seed's JSON logging API, with trace context as correlation.

Every record is one JSON line in the seed's "Log Output Format"
(``otel_tdd/schemas/log_record.schema.json``), and also an OTel log record when
OTLP is configured. Records from plain stdlib ``logging`` go through the same
pipeline via :class:`JsonLogHandler`, which ``configure()`` installs on the root
logger.

Levels are the stdlib logger's: ``StructuredLogger("x")`` writes when
``logging.getLogger("x").isEnabledFor(level)``, so one place controls both APIs.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any, TypeVar, overload

from opentelemetry.trace import Span

from otel_tdd import _runtime
from otel_tdd.correlation import correlation_context
from otel_tdd.log_pipeline import (
    SPAN_KEY,
    EventDict,
    LogPipeline,
    RateLimit,
    TraceIdSampler,
    format_timestamp,
    get_current_context,
    rate_limit_scope,
    repr_of,
    text_of,
)

__all__ = ["JsonLogHandler", "StructuredLogger", "correlation_context"]

F = TypeVar("F", bound=Callable[..., Any])

LEVEL_NAMES = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}

# Attributes every LogRecord has; anything else was passed in ``extra=`` and is data.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
# A record made without extra= has exactly these many attributes; more means extra= keys
# (or message/asctime set by another handler's formatter, which _RESERVED filters out).
_PLAIN_RECORD_SIZE = len(vars(logging.LogRecord("", 0, "", 0, "", (), None)))


def _level_method(level: int) -> Callable[[StructuredLogger, str, Mapping[str, Any] | None], None]:
    """One level method: the disabled and sampled-out paths return before building anything."""

    def method(self: StructuredLogger, message: str, data: Mapping[str, Any] | None = None) -> None:
        runtime = _runtime.RUNTIME or _runtime.current()
        if not self._std.isEnabledFor(level):
            return
        if level < logging.WARNING:
            if self._sampler_generation != runtime.generation:
                self._refresh_sampler(runtime.settings.log_sample_rate, runtime.generation)
            # Inlined cache hit of _sampled_in: one decision per attached context.
            if self._sampler is not None:
                cached_context, keep = self._last_decision
                if cached_context is not get_current_context():
                    keep = self._sampled_in(runtime)
                if not keep:
                    return
        self._write(runtime, level, message, data, None)

    method.__name__ = logging.getLevelName(level).lower()
    return method


def _level_name(level: int) -> str:
    return LEVEL_NAMES.get(level) or logging.getLevelName(level)


class StructuredLogger:
    """JSON logging with correlation IDs, performance tracking, security events and alerts.

    ``sample_rate`` keeps that share of records below WARNING, whole traces at a
    time; None takes ``OTEL_TDD_LOG_SAMPLE_RATE``.
    """

    def __init__(self, name: str, sample_rate: float | None = None) -> None:
        if sample_rate is not None and not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"sample_rate={sample_rate!r} is invalid: expected 0.0 to 1.0")
        self.name = name
        self._std = logging.getLogger(name)
        self._sample_rate = sample_rate
        self._sampler: TraceIdSampler | None = None
        self._sampler_generation = -1
        # (context, keep): one decision per attached context, as one trace is kept or not whole.
        self._last_decision: tuple[object, bool] = (None, True)

    # -- the seed's level methods (built by _level_method, one shape for all five) -----------

    debug = _level_method(logging.DEBUG)
    info = _level_method(logging.INFO)
    warning = _level_method(logging.WARNING)
    warn = warning
    error = _level_method(logging.ERROR)
    critical = _level_method(logging.CRITICAL)

    def exception(self, message: str, data: Mapping[str, Any] | None = None) -> None:
        """An ERROR record with the traceback of the exception being handled."""
        if _runtime.RUNTIME is None:
            _runtime.current()
        if self._std.isEnabledFor(logging.ERROR):
            self.log(logging.ERROR, message, data, exception=traceback.format_exc())

    def is_enabled_for(self, level: int) -> bool:
        if _runtime.RUNTIME is None:
            _runtime.current()
        return self._std.isEnabledFor(level)

    def log(
        self,
        level: int,
        message: str,
        data: Mapping[str, Any] | None = None,
        **blocks: Any,
    ) -> None:
        """Write one record. ``blocks`` become top-level fields (performance, security, ...)."""
        runtime = _runtime.RUNTIME or _runtime.current()
        if level < logging.WARNING and "security" not in blocks and not self._sampled_in(runtime):
            return
        self._write(runtime, level, message, data, blocks)

    def _write(
        self,
        runtime: _runtime.Runtime,
        level: int,
        message: str,
        data: Mapping[str, Any] | None,
        blocks: Mapping[str, Any] | None,
    ) -> None:
        event: EventDict = {
            "timestamp": format_timestamp(time.time()),
            "level": _level_name(level),
            "logger": self.name,
            "message": message if type(message) is str else text_of(message),
            "data": data if data is not None else {},
        }
        if blocks:
            event.update(blocks)
        runtime.logger_pipeline(self.name, level, event)

    def _sampled_in(self, runtime: _runtime.Runtime) -> bool:
        """Whether records below WARNING in the current context are kept (cached per context)."""
        if self._sampler_generation != runtime.generation:
            self._refresh_sampler(runtime.settings.log_sample_rate, runtime.generation)
        sampler = self._sampler
        if sampler is None:
            return True
        current = get_current_context()
        cached_context, keep = self._last_decision
        if cached_context is not current:
            span: Span | None = current.get(SPAN_KEY)  # type: ignore[assignment]
            trace_id = span.get_span_context().trace_id if span is not None else 0
            keep = sampler.keep(logging.DEBUG, trace_id)
            self._last_decision = (current, keep)
        return keep

    def _refresh_sampler(self, configured_rate: float, generation: int) -> None:
        rate = self._sample_rate if self._sample_rate is not None else configured_rate
        self._sampler = TraceIdSampler(rate) if rate < 1.0 else None
        self._sampler_generation = generation

    # -- the seed's higher-level API ---------------------------------------------------------

    def security_event(self, event_type: str, data: Mapping[str, Any] | None = None) -> None:
        """A WARNING record marked as security, a span event, and ``tdd_security_events_total``."""
        from otel_tdd.security import record_security_event

        record_security_event(self, event_type, data)

    def alert(
        self,
        name: str,
        data: Mapping[str, Any] | None = None,
        severity: str | None = None,
        alert_channels: list[str] | None = None,
    ) -> None:
        """Raise an alert (Alertmanager when configured); see :func:`otel_tdd.alerting.alert`."""
        from otel_tdd.alerting import alert

        alert(name, data, severity=severity, alert_channels=alert_channels, logger=self)

    @overload
    def performance_tracked(self, func: F) -> F: ...

    @overload
    def performance_tracked(
        self,
        func: None = None,
        *,
        name: str | None = None,
        level: int | None = None,
        alert_threshold_ms: float | None = None,
    ) -> Callable[[F], F]: ...

    def performance_tracked(
        self,
        func: F | None = None,
        *,
        name: str | None = None,
        level: int | None = None,
        alert_threshold_ms: float | None = None,
    ) -> F | Callable[[F], F]:
        """Decorator: a span, a duration histogram and a performance record per call."""
        from otel_tdd.tracking import performance_tracked

        decorated: F | Callable[[F], F] = performance_tracked(
            func, name=name, level=level, alert_threshold_ms=alert_threshold_ms, logger=self
        )
        return decorated

    def performance_context(
        self, name: str, alert_threshold_ms: float | None = None, level: int | None = None
    ) -> AbstractContextManager[dict[str, Any]]:
        """Context manager twin of :meth:`performance_tracked`."""
        from otel_tdd.tracking import performance_context

        return performance_context(
            name, alert_threshold_ms=alert_threshold_ms, level=level, logger=self
        )

    def rate_limited(self, max_logs_per_minute: int) -> Callable[[F], F]:
        """Decorator: records written inside the function are capped at N a minute."""
        # Imported here: wrapt pulls in asyncio (~30 ms), which configure() need not pay.
        import wrapt

        limit_holder: dict[str, RateLimit] = {}

        @wrapt.decorator
        def wrapper(wrapped: Any, _instance: Any, args: Any, kwargs: Any) -> Any:
            limit = limit_holder.get("limit")
            if limit is None:
                key = f"{self.name}:{getattr(wrapped, '__qualname__', wrapped)}"
                limit = limit_holder.setdefault("limit", RateLimit(key, max_logs_per_minute))
            with rate_limit_scope(limit):
                return wrapped(*args, **kwargs)

        if max_logs_per_minute < 1:
            raise ValueError(
                f"max_logs_per_minute={max_logs_per_minute!r} is invalid: expected at least 1"
            )
        decorate: Callable[[F], F] = wrapper  # type: ignore[assignment]
        return decorate

    def correlation_context(
        self,
        user_id: str | None = None,
        request_id: str | None = None,
        session_id: str | None = None,
    ) -> AbstractContextManager[Any]:
        return correlation_context(user_id, request_id, session_id)


class JsonLogHandler(logging.Handler):
    """Turns stdlib ``logging`` records into the same JSON and OTel records as StructuredLogger."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        # Set by otel_tdd.logging_guard once the app configured logging: True for a record
        # the app's own console handlers have, which then goes over OTLP only.
        self.app_owns_record: Callable[[logging.LogRecord], bool] | None = None
        self._json_less: tuple[object, LogPipeline | None] = (None, None)

    def handle(self, record: logging.LogRecord) -> bool:
        """As ``Handler.handle`` without the handler lock: every step of the pipeline is
        thread-safe and the line is written with one call, so the lock would only serialise."""
        if self.filters:
            result = self.filter(record)
            if not result:
                return False
            if isinstance(result, logging.LogRecord):
                record = result
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        """Never raises: a record that cannot be built is counted and written as a bounded
        line saying so (stdlib's ``Handler.emit`` contract, without its stderr traceback)."""
        runtime = _runtime.RUNTIME or _runtime.current()
        pipeline = runtime.stdlib_pipeline
        try:
            # Inside the try: a record the app's check cannot read fails like any step.
            if self.app_owns_record is not None and self.app_owns_record(record):
                if runtime.logger_provider is None:
                    return  # no OTLP logs: nothing left for us to do with it
                pipeline = self._without_json(pipeline)
            try:
                message = record.getMessage()
            except Exception:  # a bad %-format or a raising __str__/__repr__ in an argument
                message = f"{repr_of(record.msg)} % {_args_text(record.args)}"
            attributes = record.__dict__
            data: dict[str, Any] = {}
            if len(attributes) > _PLAIN_RECORD_SIZE:  # only records with extra= have more keys
                data = {key: attributes[key] for key in attributes.keys() - _RESERVED}
            event: EventDict = {
                "timestamp": format_timestamp(record.created),
                "level": _level_name(record.levelno),
                "logger": record.name,
                "message": message,
                "data": data,
                "_time_ns": int(record.created * 1e9),
            }
            if record.exc_info and record.exc_info[0] is not None:
                event["exception"] = "".join(traceback.format_exception(*record.exc_info))
            elif record.exc_text:
                event["exception"] = record.exc_text
        except Exception as error:  # a record someone built by hand, a hostile exception...
            name = getattr(record, "name", None)
            level = getattr(record, "levelno", logging.ERROR)
            pipeline.failed(name if type(name) is str else "", level, None, error)
            return
        pipeline(record.name, record.levelno, event)  # reports its own failures

    def _without_json(self, pipeline: LogPipeline) -> LogPipeline:
        built, json_less = self._json_less
        if built is not pipeline or json_less is None:
            json_less = pipeline.without_json()
            self._json_less = (pipeline, json_less)
        return json_less

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - stdlib's name
        # The pipeline reports its own failures; stdlib's default prints a traceback per record.
        return


def _args_text(args: object) -> str:
    """The %-arguments of a record that failed to format, each shown on its own."""
    if isinstance(args, tuple):
        return "(" + ", ".join(repr_of(arg) for arg in args) + ")"
    return repr_of(args)


def iter_json_lines(text: str) -> Iterator[str]:
    """The non-empty lines of a captured stream (test and tooling helper).

    Split on ``\\n`` only: a JSON line may hold U+2028, U+2029 or U+0085, which
    ``str.splitlines`` would also split on.
    """
    return (line for line in text.split("\n") if line.strip())
