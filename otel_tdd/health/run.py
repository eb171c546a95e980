"""One run of the health checks: each in its own thread and span, bounded by its timeout.

A check still stuck from an earlier run is not started again: it reports critical
until it returns, so a hung dependency costs one thread, not one per probe.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, StatusCode, Tracer

from otel_tdd import _runtime
from otel_tdd._util import ThreadCall, start_call
from otel_tdd.health.status import (
    CRITICAL,
    HEALTHY,
    STATUS_VALUE,
    STATUSES,
    WARNING,
    critical_result,
    error_text,
    normalize,
    utc_now,
)
from otel_tdd.metrics import catalog

__all__ = ["Check", "Report", "Runner", "current_tracer"]

_NO_OP_TRACER = trace.NoOpTracer()


def current_tracer() -> Tracer:
    """The configured tracer; before configure(), one that records nothing."""
    runtime = _runtime.RUNTIME
    return runtime.tracer if runtime is not None else _NO_OP_TRACER


@dataclass(frozen=True)
class Check:
    name: str
    func: Callable[[], Any]
    critical: bool
    timeout_s: float


@dataclass(frozen=True)
class Report:
    body: dict[str, Any]
    # Names of checks registered critical=True that report critical: these fail readiness.
    failing: tuple[str, ...]
    at: float


# What a check's thread returns: its result and when it ended (the end of its span).
_Outcome = tuple[dict[str, Any], int]


@dataclass(frozen=True)
class _Started:
    check: Check
    span: Span
    call: ThreadCall[_Outcome] | None  # None: still running from an earlier run


class Runner:
    """Runs checks concurrently and records their metrics; remembers the hung ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _hung
        self._hung: dict[str, ThreadCall[_Outcome]] = {}

    def run(self, checks: list[Check]) -> Report:
        """Each check's span is a child of the current span (the run's, see HealthMonitor)."""
        tracer = current_tracer()
        with self._lock:
            hung = set(self._hung)
        started = [self._start(tracer, check, check.name in hung) for check in checks]
        began = time.monotonic()
        results = {item.check.name: self._finish(item, began) for item in started}
        report = _summarize(checks, results)
        with contextlib.suppress(Exception):  # telemetry must not break the health answer
            for name, result in results.items():
                catalog.health_check_status.set(STATUS_VALUE[result["status"]], {"check": name})
        return report

    def _start(self, tracer: Tracer, check: Check, hung: bool) -> _Started:
        span = tracer.start_span(
            f"health check {check.name}",
            attributes={"health.check": check.name, "health.check.critical": check.critical},
        )
        if hung:
            return _Started(check, span, None)
        call = start_call(
            functools.partial(_evaluate, check, span),
            name=f"otel-tdd-health-{check.name}",
            on_done=functools.partial(self._forget_hung, check.name),
        )
        return _Started(check, span, call)

    def _forget_hung(self, name: str, call: ThreadCall[_Outcome]) -> None:
        with self._lock:
            if self._hung.get(name) is call:
                del self._hung[name]

    def _finish(self, item: _Started, began: float) -> dict[str, Any]:
        """Wait for one check, then end its span with the result and its duration recorded."""
        check, call = item.check, item.call
        ended_ns: int | None = None
        if call is None:
            result = critical_result(
                f"check {check.name!r} is still running from an earlier run that timed out "
                f"after {check.timeout_s:g}s"
            )
            duration = check.timeout_s
        elif not self._wait(check, call, began):
            result = critical_result(f"check {check.name!r} timed out after {check.timeout_s:g}s")
            duration = time.monotonic() - began
        elif call.value is None:  # the check raised past Exception (SystemExit...)
            assert call.error is not None
            result = critical_result(
                f"check {check.name!r} failed: {error_text(call.error)}",
                error=type(call.error).__name__,
            )
            duration = call.duration_s
        else:
            result, ended_ns = call.value
            duration = call.duration_s
        _end_span(item, result, duration, ended_ns)
        return result

    def _wait(self, check: Check, call: ThreadCall[_Outcome], began: float) -> bool:
        """True when the check returned in time; else it is remembered as hung."""
        finished = call.wait(began + check.timeout_s - time.monotonic())
        with self._lock:
            if not finished and not call.done.is_set():
                self._hung[check.name] = call
                return False
        return True


def _evaluate(check: Check, span: Span) -> _Outcome:
    """In the check's thread: its span current, so its logs and spans belong to it."""
    # Nothing raw from an exception on the span: its text may quote a DSN. The status set
    # at the end carries the redacted message instead.
    with trace.use_span(
        span, end_on_exit=False, record_exception=False, set_status_on_exception=False
    ):
        try:
            result = normalize(check.name, check.func())
        except Exception as error:
            result = critical_result(
                f"check {check.name!r} failed: {error_text(error)}", error=type(error).__name__
            )
    return result, time.time_ns()


def _end_span(
    item: _Started, result: dict[str, Any], duration: float, ended_ns: int | None
) -> None:
    span = item.span
    with contextlib.suppress(Exception):  # telemetry must not break the health answer
        # Recorded while the check's span is current: its exemplar carries the trace id.
        with trace.use_span(span, end_on_exit=False):
            catalog.health_check_duration.record(duration, {"check": item.check.name})
        span.set_attribute("health.status", result["status"])
        if result["status"] == CRITICAL:
            span.set_status(StatusCode.ERROR, str(result.get("message")))
    span.end(end_time=ended_ns)


def _summarize(checks: list[Check], results: dict[str, dict[str, Any]]) -> Report:
    counts = {status: 0 for status in STATUSES}
    for result in results.values():
        counts[result["status"]] += 1
    failing = tuple(
        check.name
        for check in checks
        if check.critical and results[check.name]["status"] == CRITICAL
    )
    if failing:
        overall = CRITICAL
    elif counts[WARNING] or counts[CRITICAL]:
        overall = WARNING  # a non-critical check failing degrades, it does not fail
    else:
        overall = HEALTHY
    body = {
        "overall_status": overall,
        "timestamp": utc_now(),
        "checks": results,
        "summary": {**counts, "total": len(results)},
        "healthy_count": counts[HEALTHY],
        "critical_count": counts[CRITICAL],
    }
    return Report(body, failing, time.monotonic())
