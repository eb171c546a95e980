"""``StructuredLogger``: the seed's JSON logging API, with trace context as correlation.

Every record is one JSON line in the seed's "Log Output Format"
(``otel_tdd/schemas/log_record.schema.json``), and also an OTel log record when
OTLP is configured. The facade over the emit path (:mod:`otel_tdd.emit`),
performance tracking, alerts and security events.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, TypeVar, overload

from otel_tdd import _runtime, alerting, performance, security
from otel_tdd.correlation import correlation_context
from otel_tdd.emit import LEVEL_NAMES, Emitter
from otel_tdd.logs.handler import JsonLogHandler, iter_json_lines
from otel_tdd.logs.steps import RateLimit, get_current_context, rate_limit_scope

__all__ = [
    "LEVEL_NAMES",
    "JsonLogHandler",
    "StructuredLogger",
    "correlation_context",
    "iter_json_lines",
]

F = TypeVar("F", bound=Callable[..., Any])


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


class StructuredLogger(Emitter):
    """JSON logging with correlation IDs, performance tracking, security events and alerts.

    ``sample_rate`` keeps that share of records below WARNING, whole traces at a
    time; None takes ``OTEL_TDD_LOG_SAMPLE_RATE``.
    """

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

    # -- the seed's higher-level API ---------------------------------------------------------

    def security_event(self, event_type: str, data: Mapping[str, Any] | None = None) -> None:
        """A WARNING record marked as security, a span event, and ``tdd_security_events_total``."""
        security.record_security_event(self, event_type, data)

    def alert(
        self,
        name: str,
        data: Mapping[str, Any] | None = None,
        severity: str | None = None,
        alert_channels: list[str] | None = None,
    ) -> None:
        """Raise an alert (Alertmanager when configured); see :func:`otel_tdd.alerting.alert`."""
        alerting.alert(name, data, severity=severity, alert_channels=alert_channels, logger=self)

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
        decorated: F | Callable[[F], F] = performance.performance_tracked(
            func, name=name, level=level, alert_threshold_ms=alert_threshold_ms, logger=self
        )
        return decorated

    def performance_context(
        self, name: str, alert_threshold_ms: float | None = None, level: int | None = None
    ) -> AbstractContextManager[dict[str, Any]]:
        """Context manager twin of :meth:`performance_tracked`."""
        return performance.performance_context(
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
