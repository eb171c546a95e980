"""``HealthMonitor``: registers checks, runs them bounded and cached, answers the probes.

How checks run, are cached and reported (spans, metrics, status-change logs):
docs/health.md.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, overload

from opentelemetry import trace

from otel_tdd._util import seconds
from otel_tdd.export_accounting import dropped_totals
from otel_tdd.health.run import Check, Report, Runner, current_tracer
from otel_tdd.health.status import CRITICAL, HEALTHY, HealthResponse, is_shutting_down, utc_now

__all__ = ["HealthMonitor", "default_monitor", "set_default_monitor"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_CACHE_TTL_S = 1.0
# A run that outlives its longest check timeout by this much means the monitor is wedged.
STUCK_GRACE_S = 5.0

# The package's name, not this module's: "otel_tdd.health" is the logger users filter on.
_log = logging.getLogger("otel_tdd.health")


class HealthMonitor:
    """Registry and runner of health checks; docs/health.md describes the behaviour.

    ``cache_ttl_s``: how long a report is reused (0 disables caching).
    ``default_timeout_s``: timeout of checks registered without one.
    ``heartbeat_timeout_s``: when set, liveness fails if :meth:`heartbeat` was not
    called for that long (counted from construction), the way to make liveness see
    a main loop that stopped turning.
    """

    def __init__(
        self,
        *,
        cache_ttl_s: float = DEFAULT_CACHE_TTL_S,
        default_timeout_s: float = DEFAULT_TIMEOUT_S,
        heartbeat_timeout_s: float | None = None,
    ) -> None:
        self.cache_ttl_s = seconds("cache_ttl_s", cache_ttl_s, allow_zero=True)
        self.default_timeout_s = seconds("default_timeout_s", default_timeout_s)
        self.heartbeat_timeout_s = (
            None
            if heartbeat_timeout_s is None
            else seconds("heartbeat_timeout_s", heartbeat_timeout_s)
        )
        self._checks: dict[str, Check] = {}
        self._lock = threading.Lock()  # guards _checks, _last_status
        self._run_lock = threading.Lock()  # one run at a time; waiters reuse its report
        self._runner = Runner()
        self._last_status: dict[str, str] = {}
        self._report: Report | None = None
        self._run_started: float | None = None
        self._started = time.monotonic()
        self._last_heartbeat = self._started
        self._periodic_stop: threading.Event | None = None

    # -- registration -----------------------------------------------------------------------

    @overload
    def register_check(self, name: F, /) -> F: ...

    @overload
    def register_check(
        self,
        name: str,
        func: F,
        /,
        *,
        critical: bool = True,
        timeout_s: float | None = None,
    ) -> F: ...

    @overload
    def register_check(
        self,
        name: str | None = None,
        func: None = None,
        /,
        *,
        critical: bool = True,
        timeout_s: float | None = None,
    ) -> Callable[[F], F]: ...

    def register_check(
        self,
        name: str | Callable[..., Any] | None = None,
        func: Callable[..., Any] | None = None,
        /,
        *,
        critical: bool = True,
        timeout_s: float | None = None,
    ) -> Any:
        """Register a check, in any of these forms::

            @health.register_check                       # name: the function's name
            @health.register_check("epic_sync_status")   # the seed's form
            @health.register_check("db", critical=False, timeout_s=2)
            health.register_check("disk", disk_space_check("/"))   # a plain call

        ``critical=True``: a critical result fails readiness and the overall status;
        ``critical=False``: it only makes the overall status a warning (use it for
        dependencies whose loss should not take the instance out of rotation, such as
        the telemetry backends). Bad arguments raise here, at registration.
        """
        if timeout_s is not None:
            timeout_s = seconds("timeout_s", timeout_s)
        if not isinstance(critical, bool):
            raise TypeError(f"critical={critical!r} is invalid: expected True or False")
        if callable(name) and func is None:
            return self._add(None, name, critical, timeout_s)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"check name {name!r} is invalid: expected a non-empty string")
        if func is not None:
            return self._add(name, func, critical, timeout_s)
        if name is not None:
            self._validate_name(name)

        def decorate(check: F) -> F:
            return self._add(name, check, critical, timeout_s)

        return decorate

    def _validate_name(self, name: str) -> None:
        if not name.strip():
            raise ValueError(f"check name {name!r} is invalid: expected a non-empty string")
        if name in self._checks:
            raise ValueError(f"a health check named {name!r} is already registered")

    def _add(self, name: str | None, func: F, critical: bool, timeout_s: float | None) -> F:
        if not callable(func):
            raise TypeError(f"health check {name!r} is {func!r}, which is not callable")
        check_name = name if name is not None else getattr(func, "__name__", None)
        if not isinstance(check_name, str):
            raise TypeError(f"cannot name the health check {func!r}: pass a name")
        with self._lock:
            self._validate_name(check_name)
            self._checks[check_name] = Check(
                check_name, func, critical, timeout_s or self.default_timeout_s
            )
            self._report = None
        return func

    def unregister_check(self, name: str) -> None:
        """Remove a check; a name that is not registered raises KeyError."""
        with self._lock:
            del self._checks[name]
            self._last_status.pop(name, None)
            self._report = None

    def check_names(self) -> list[str]:
        with self._lock:
            return list(self._checks)

    # -- running ----------------------------------------------------------------------------

    def run_all_checks(self, *, use_cache: bool = True) -> dict[str, Any]:
        """The seed's "Health Check Output": overall_status, timestamp, checks, summary.

        Plus ``healthy_count`` and ``critical_count`` (the seed's example reads them).
        ``overall_status`` is critical when a ``critical=True`` check is critical,
        warning when any check is not healthy, else healthy. The returned dict is the
        caller's own copy.
        """
        return copy.deepcopy(self._current_report(use_cache).body)

    def refresh(self) -> None:
        """Run the checks unless the cached report is fresh (updates the health gauges)."""
        self._current_report()

    def _fresh(self, use_cache: bool) -> Report | None:
        report = self._report
        if use_cache and report is not None and time.monotonic() - report.at < self.cache_ttl_s:
            return report
        return None

    def _current_report(self, use_cache: bool = True) -> Report:
        report = self._fresh(use_cache)
        if report is not None:
            return report
        with self._run_lock:
            # Another caller may have run the checks while this one waited for the lock.
            report = self._fresh(use_cache)
            if report is not None:
                return report
            with self._lock:
                checks = list(self._checks.values())
            self._run_started = time.monotonic()
            # One trace per run: the checks' spans and the status-change records are in it.
            # No checks, nothing to trace: an app that registered none sees no spans of ours.
            with (
                current_tracer().start_as_current_span("health checks")
                if checks
                else contextlib.nullcontext(trace.INVALID_SPAN)
            ) as span:
                try:
                    report = self._runner.run(checks)
                finally:
                    self._run_started = None
                span.set_attribute("health.overall_status", report.body["overall_status"])
                self._log_changes(checks, report.body["checks"])
            self._report = report
            return report

    def _log_changes(self, checks: list[Check], results: dict[str, dict[str, Any]]) -> None:
        """A log record for every change of status, not for every run. Never raises."""
        try:
            with self._lock:
                changes = []
                for check in checks:
                    status = results[check.name]["status"]
                    previous = self._last_status.get(check.name)
                    self._last_status[check.name] = status
                    if status != previous and not (previous is None and status == HEALTHY):
                        changes.append((check, status, previous))
            for check, status, previous in changes:
                _log_change(check, status, previous, results[check.name])
        except Exception:  # telemetry about health must not break the health answer
            pass

    # -- periodic runs ----------------------------------------------------------------------

    def start_periodic_checks(self, interval_s: float = 15.0) -> None:
        """Run the checks every ``interval_s`` in a daemon thread.

        Probes and /metrics scrapes run them on demand; this keeps
        ``tdd_health_check_status`` fresh for OTLP export when nothing probes.
        """
        interval = seconds("interval_s", interval_s)
        with self._lock:
            if self._periodic_stop is not None:
                raise RuntimeError("periodic health checks are already running")
            stop = self._periodic_stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                with contextlib.suppress(Exception):  # a failing run must not end the loop
                    self._current_report(use_cache=True)

        threading.Thread(target=loop, name="otel-tdd-health-periodic", daemon=True).start()

    def stop_periodic_checks(self) -> None:
        with self._lock:
            stop, self._periodic_stop = self._periodic_stop, None
        if stop is not None:
            stop.set()

    # -- probes -----------------------------------------------------------------------------

    def heartbeat(self) -> None:
        """Tell liveness the main loop is turning (only consulted with ``heartbeat_timeout_s``)."""
        self._last_heartbeat = time.monotonic()

    def _stuck_limit_s(self) -> float:
        with self._lock:
            longest = max((c.timeout_s for c in self._checks.values()), default=0.0)
        return max(longest, self.default_timeout_s) + STUCK_GRACE_S

    def get_liveness_status(self) -> HealthResponse:
        """200 while the process works; 503 when wedged. Runs no checks."""
        now = time.monotonic()
        reasons = []
        if self.heartbeat_timeout_s is not None:
            silent = now - self._last_heartbeat
            if silent > self.heartbeat_timeout_s:
                reasons.append(
                    f"no heartbeat for {silent:.1f}s (limit {self.heartbeat_timeout_s:g}s)"
                )
        run_started = self._run_started
        if run_started is not None and now - run_started > self._stuck_limit_s():
            reasons.append(f"a health check run has been stuck for {now - run_started:.1f}s")
        body: dict[str, Any] = {
            "status": "wedged" if reasons else "alive",
            "timestamp": utc_now(),
            "uptime_s": round(now - self._started, 3),
        }
        if reasons:
            body["reason"] = "; ".join(reasons)
            return HealthResponse(body, 503)
        return HealthResponse(body, 200)

    def get_readiness_status(self) -> HealthResponse:
        """503 while shutting down or when a critical check fails, else 200."""
        if is_shutting_down():
            return _not_ready("shutting down")
        report = self._current_report()
        if is_shutting_down():  # the flag may have been set while the checks ran
            return _not_ready("shutting down")
        overall = report.body["overall_status"]
        if report.failing:
            return _not_ready(
                "critical checks failing: " + ", ".join(report.failing),
                overall_status=overall,
                failing=list(report.failing),
            )
        body = {"status": "ready", "overall_status": overall, "timestamp": utc_now()}
        return HealthResponse(body, 200)

    def get_detailed_status(self) -> HealthResponse:
        """The full report; 503 when overall critical or shutting down (``shutting_down``: true).

        Plus ``telemetry_dropped``: items lost per signal since the process started
        (the running totals of ``tdd_telemetry_dropped_total``).
        """
        body = self.run_all_checks()
        body["telemetry_dropped"] = dropped_totals()
        if is_shutting_down():
            body["shutting_down"] = True
            return HealthResponse(body, 503)
        return HealthResponse(body, 503 if body["overall_status"] == CRITICAL else 200)


def _not_ready(reason: str, **extra: Any) -> HealthResponse:
    body = {"status": "not_ready", "reason": reason, **extra, "timestamp": utc_now()}
    return HealthResponse(body, 503)


def _log_change(check: Check, status: str, previous: str | None, result: dict[str, Any]) -> None:
    data = {
        "check": check.name,
        "status": status,
        "previous_status": previous,
        "critical_check": check.critical,
        "detail": result.get("message"),
    }
    if status == HEALTHY:
        _log.info("Health check %s recovered", check.name, extra=data)
    elif status == CRITICAL and check.critical:
        _log.error("Health check %s is critical", check.name, extra=data)
    else:
        _log.warning("Health check %s is %s", check.name, status, extra=data)


# --- the process-wide monitor ----------------------------------------------------------------


_default: HealthMonitor | None = None
_default_lock = threading.Lock()


def default_monitor() -> HealthMonitor:
    """The monitor the ops server answers for unless it was given another one."""
    global _default
    with _default_lock:
        if _default is None:
            _default = HealthMonitor()
        return _default


def set_default_monitor(monitor: HealthMonitor) -> None:
    """Make ``monitor`` the one the ops server's /health endpoints use."""
    global _default
    if not isinstance(monitor, HealthMonitor):
        raise TypeError(f"{monitor!r} is not a HealthMonitor")
    with _default_lock:
        _default = monitor
