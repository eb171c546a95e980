"""``performance_tracked`` and ``performance_context``: a span, a histogram and a record per call.

Built on wrapt, so signatures and methods behave as undecorated; the hot path
costs what a hand-written span plus a histogram record does (docs/benchmarks.md).
Over ``alert_threshold_ms``: a WARNING record, a span event, a counter and an alert.
"""

from __future__ import annotations

import inspect
import logging
import resource
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from otel_tdd import _runtime
from otel_tdd._util import rss_bytes
from otel_tdd.alerting import on_threshold_exceeded
from otel_tdd.emit import Emitter
from otel_tdd.logs.record import MAX_MESSAGE_CHARS
from otel_tdd.logs.safe import text_of
from otel_tdd.metrics import catalog
from otel_tdd.redaction import Redactor

__all__ = ["memory_usage_mb", "performance_context", "performance_tracked"]

F = TypeVar("F", bound=Callable[..., Any])


def memory_usage_mb() -> float:
    """Resident memory of this process in MB (peak RSS where the current one is unknown)."""
    rss = rss_bytes()
    if rss is not None:
        return round(rss / (1024 * 1024), 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


_default_logger = Emitter("otel_tdd.performance")


def _logger_or_default(logger: Emitter | None) -> Emitter:
    return logger if logger is not None else _default_logger


def _record_exception(span: Span, error: BaseException, runtime: _runtime.Runtime | None) -> None:
    """``span.record_exception`` with the message and traceback redacted.

    The SDK's own puts ``str(error)`` and the traceback on the span as they are: a
    connection string or a card number in an error message would be exported.
    """
    redactor = runtime.redactor if runtime is not None else Redactor()
    try:
        stacktrace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    except Exception:
        stacktrace = ""
    module, qualname = type(error).__module__, type(error).__qualname__
    span.add_event(
        "exception",
        {  # the SDK's attributes, as its record_exception sets them
            "exception.type": f"{module}.{qualname}" if module != "builtins" else qualname,
            "exception.message": redactor.bounded_text(text_of(error), MAX_MESSAGE_CHARS),
            "exception.stacktrace": redactor.bounded_text(stacktrace, MAX_MESSAGE_CHARS),
            "exception.escaped": "False",
        },
    )


class _Tracker:
    """Per-operation state, built once at decoration time."""

    __slots__ = ("attributes", "level", "logger", "name", "threshold_ms")

    def __init__(
        self,
        name: str,
        level: int | None,
        alert_threshold_ms: float | None,
        logger: Emitter | None,
    ) -> None:
        if alert_threshold_ms is not None and alert_threshold_ms < 0:
            raise ValueError(
                f"alert_threshold_ms={alert_threshold_ms!r} is invalid: expected a number >= 0"
            )
        self.name = name
        self.level = level
        self.threshold_ms = alert_threshold_ms
        self.logger = logger
        self.attributes = {"operation": name}

    def start(self) -> tuple[Span, object, int]:
        span = _runtime.current().tracer.start_span(self.name)
        token = otel_context.attach(trace.set_span_in_context(span))
        return span, token, time.perf_counter_ns()

    def finish(
        self,
        span: Span,
        token: object,
        started_ns: int,
        error: BaseException | None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        elapsed_ns = time.perf_counter_ns() - started_ns
        runtime = _runtime.RUNTIME
        performance: dict[str, Any] = {}
        try:
            if error is not None:
                _record_exception(span, error, runtime)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            catalog.operation_duration.record(elapsed_ns / 1e9, self.attributes)
            duration_ms = elapsed_ns / 1e6
            performance = {"operation": self.name, "duration_ms": round(duration_ms, 3)}
            if extra and runtime is not None:
                extra = runtime.redactor.mapping(extra)
                performance.update(extra)
                for key, value in extra.items():
                    if isinstance(value, int) and not -(2**63) <= value < 2**63:
                        # OTLP ints are 64-bit: a bigger one fails the whole export batch.
                        span.set_attribute(f"performance.{key}", str(value))
                    elif isinstance(value, (str, bool, int, float)):
                        span.set_attribute(f"performance.{key}", value)
            if self.threshold_ms is not None and duration_ms > self.threshold_ms:
                self._threshold_exceeded(span, performance)
            level = self.level
            if level is None:
                level = runtime.settings.performance_log_level if runtime else logging.DEBUG
            logger = _logger_or_default(self.logger)
            if logger.is_enabled_for(level):
                performance["memory_usage_mb"] = memory_usage_mb()
                status = "error" if error is not None else "ok"
                performance["status"] = status
                logger.log(level, f"{self.name} completed", None, performance=performance)
        except Exception:  # telemetry must never break the app
            pass
        finally:
            otel_context.detach(token)  # type: ignore[arg-type]
            span.end()
        return performance

    def _threshold_exceeded(self, span: Span, performance: dict[str, Any]) -> None:
        performance["alert_threshold_ms"] = self.threshold_ms
        span.add_event("performance.threshold_exceeded", dict(performance))
        catalog.threshold_exceeded.add(1, self.attributes)
        logger = _logger_or_default(self.logger)
        logger.log(
            logging.WARNING,
            f"{self.name} took {performance['duration_ms']} ms, over {self.threshold_ms} ms",
            None,
            performance=dict(performance),
        )
        on_threshold_exceeded(self.name, dict(performance), logger)


def _wrap_function(tracker: _Tracker) -> Any:
    @wrapt.decorator
    def wrapper(wrapped: Any, _instance: Any, args: Any, kwargs: Any) -> Any:
        span, token, started = tracker.start()
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as error:
            tracker.finish(span, token, started, error)
            raise
        tracker.finish(span, token, started, None)
        return result

    return wrapper


def _wrap_coroutine(tracker: _Tracker) -> Any:
    @wrapt.decorator
    async def wrapper(wrapped: Any, _instance: Any, args: Any, kwargs: Any) -> Any:
        span, token, started = tracker.start()
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as error:
            tracker.finish(span, token, started, error)
            raise
        tracker.finish(span, token, started, None)
        return result

    return wrapper


def _wrap_generator(tracker: _Tracker) -> Any:
    """The span covers the whole iteration, but is current only while the generator runs.

    Attaching across a ``yield`` would leak the span into the consumer's context,
    so each step attaches and detaches around the generator's own code.
    """

    @wrapt.decorator
    def wrapper(wrapped: Any, _instance: Any, args: Any, kwargs: Any) -> Any:
        def run() -> Iterator[Any]:
            span, token, started = tracker.start()
            span_ctx = trace.set_span_in_context(span)
            otel_context.detach(token)  # type: ignore[arg-type]
            error: BaseException | None = None
            generator = wrapped(*args, **kwargs)
            try:
                sent: Any = None
                while True:
                    step = otel_context.attach(span_ctx)
                    try:
                        item = generator.send(sent)
                    finally:
                        otel_context.detach(step)
                    sent = yield item
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            except BaseException as caught:
                error = caught
                raise
            finally:
                generator.close()
                tracker.finish(span, otel_context.attach(span_ctx), started, error)

        return run()

    return wrapper


def _wrap_async_generator(tracker: _Tracker) -> Any:
    @wrapt.decorator
    def wrapper(wrapped: Any, _instance: Any, args: Any, kwargs: Any) -> Any:
        async def run() -> Any:
            span, token, started = tracker.start()
            span_ctx = trace.set_span_in_context(span)
            otel_context.detach(token)  # type: ignore[arg-type]
            error: BaseException | None = None
            generator = wrapped(*args, **kwargs)
            try:
                sent: Any = None
                while True:
                    step = otel_context.attach(span_ctx)
                    try:
                        item = await generator.asend(sent)
                    except StopAsyncIteration:
                        return
                    finally:
                        otel_context.detach(step)
                    sent = yield item
            except BaseException as caught:
                error = caught
                raise
            finally:
                await generator.aclose()
                tracker.finish(span, otel_context.attach(span_ctx), started, error)

        return run()

    return wrapper


def performance_tracked(
    func: F | None = None,
    *,
    name: str | None = None,
    level: int | None = None,
    alert_threshold_ms: float | None = None,
    logger: Emitter | None = None,
) -> Any:
    """Decorate a function, method, coroutine, generator or async generator.

    Usable bare (``@performance_tracked``) or with arguments. ``level`` is the level
    of the per-call record (default ``OTEL_TDD_PERFORMANCE_LOG_LEVEL``, DEBUG).
    """

    def decorate(target: F) -> F:
        if not callable(target):
            raise TypeError(f"performance_tracked needs a callable, got {target!r}")
        operation = name or getattr(target, "__qualname__", None) or repr(target)
        tracker = _Tracker(operation, level, alert_threshold_ms, logger)
        if inspect.isasyncgenfunction(target):
            wrap = _wrap_async_generator(tracker)
        elif inspect.iscoroutinefunction(target):
            wrap = _wrap_coroutine(tracker)
        elif inspect.isgeneratorfunction(target):
            wrap = _wrap_generator(tracker)
        else:
            wrap = _wrap_function(tracker)
        decorated: F = wrap(target)
        return decorated

    if func is not None:
        return decorate(func)
    return decorate


@contextmanager
def performance_context(
    name: str,
    alert_threshold_ms: float | None = None,
    level: int | None = None,
    logger: Emitter | None = None,
) -> Iterator[dict[str, Any]]:
    """Measure a block. Yields a dict; keys the block adds (records_processed, cache_hit_ratio)
    join the record's ``performance`` block."""
    tracker = _Tracker(name, level, alert_threshold_ms, logger)
    extra: dict[str, Any] = {}
    span, token, started = tracker.start()
    try:
        yield extra
    except BaseException as error:
        tracker.finish(span, token, started, error, extra)
        raise
    tracker.finish(span, token, started, None, extra)
