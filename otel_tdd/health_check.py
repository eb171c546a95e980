"""``HealthMonitor``: the seed's health checks, bounded, cached, and reported as telemetry.

A check is a plain callable returning ``{"status": "healthy" | "warning" |
"critical", "message": ..., **extra}``. The monitor never trusts it: an
exception, a timeout or a malformed return becomes a ``critical`` result that
says why, and the monitor itself keeps answering.

Checks run concurrently, one daemon thread per check, each bounded by its own
timeout. Daemon threads rather than a pool: a check stuck in a C call cannot be
cancelled, and a stuck pool worker would starve every later run (and
``concurrent.futures`` joins its workers at interpreter exit, so a hung check
would also hang the process on exit). A check still stuck from an earlier run is
not started again; it reports critical until it returns, so a hung dependency
costs one thread, not one per probe.

Results are cached for ``cache_ttl_s`` (1 s by default) and concurrent callers
share one run, so a storm of probes from several kubelets, a load balancer and
a Prometheus scrape becomes at most one round of database queries per second.

Three probe views, framework-neutral: each returns a :class:`HealthResponse`,
a ``(body, status_code)`` named tuple, which Flask accepts as a return value
as it is (the seed's ``return health.get_liveness_status()``):

* liveness: 200 unless the process is wedged (a heartbeat stopped, or a check
  run outlived every timeout). Dependencies are deliberately not consulted: a
  database outage must take the pod out of rotation, not restart it.
* readiness: 503 while shutting down (:func:`mark_shutting_down`, set first by
  :class:`~otel_tdd.graceful_shutdown.GracefulShutdown`) or when a check
  registered with ``critical=True`` reports critical.
* detailed: the full report of :meth:`HealthMonitor.run_all_checks`.

Every run sets ``tdd_health_check_status{check}`` (1 healthy, 0.5 warning,
0 critical) and records ``tdd_health_check_duration_seconds{check}``; a change
of status is logged once, not on every probe.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import math
import os
import shutil
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, overload
from urllib.parse import urlsplit

import orjson

from otel_tdd import _runtime
from otel_tdd.redaction import Redactor

__all__ = [
    "CRITICAL",
    "HEALTHY",
    "STATUSES",
    "WARNING",
    "CheckFunc",
    "HealthMonitor",
    "HealthResponse",
    "alertmanager_check",
    "clear_shutting_down",
    "database_check",
    "default_monitor",
    "disk_space_check",
    "is_shutting_down",
    "mark_shutting_down",
    "memory_check",
    "otlp_endpoint_check",
    "set_default_monitor",
]

HEALTHY = "healthy"
WARNING = "warning"
CRITICAL = "critical"
STATUSES = (HEALTHY, WARNING, CRITICAL)
# The value of tdd_health_check_status for each status (the alert rule fires on 0).
STATUS_VALUE = {HEALTHY: 1.0, WARNING: 0.5, CRITICAL: 0.0}

CheckFunc = Callable[[], Mapping[str, Any]]
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_CACHE_TTL_S = 1.0
# A run that outlives its longest check timeout by this much means the monitor is wedged.
STUCK_GRACE_S = 5.0


# --- the process-wide "shutting down" flag ---------------------------------------------------

# A plain bool, not a threading.Event: it is set from a signal handler, where taking a
# lock that the interrupted code may hold would deadlock. Reads and writes of a module
# global are atomic under the GIL.
_shutting_down = False


def mark_shutting_down() -> None:
    """Readiness answers 503 from now on (GracefulShutdown calls this first)."""
    global _shutting_down
    _shutting_down = True


def is_shutting_down() -> bool:
    """True once a graceful shutdown has begun; long loops can check it to stop taking work."""
    return _shutting_down


def clear_shutting_down() -> None:
    """Undo :func:`mark_shutting_down` (tests; a worker that forked from a stopping parent)."""
    global _shutting_down
    _shutting_down = False


# --- results ---------------------------------------------------------------------------------


class HealthResponse(NamedTuple):
    """A probe answer: the JSON body and the HTTP status code (200 or 503).

    A tuple, so ``return monitor.get_readiness_status()`` works unchanged in Flask
    and anything else that takes ``(body, status)``.
    """

    body: dict[str, Any]
    status_code: int

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    def json_bytes(self) -> bytes:
        """The body as JSON; values a check put in that JSON cannot encode become text.

        Never raises: what orjson refuses (a lone surrogate, a huge int, a raising
        ``__repr__``) is sanitized as log lines are, rather than answering 500.
        """
        try:
            return orjson.dumps(self.body, default=repr, option=orjson.OPT_NON_STR_KEYS)
        except Exception:
            from otel_tdd.logs.safe import sanitize as _sanitize

            return orjson.dumps(_sanitize(self.body), option=orjson.OPT_NON_STR_KEYS)


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _validate_timeout(what: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what}={value!r} is invalid: expected a number of seconds > 0")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what}={value!r} is invalid: expected a number of seconds > 0")
    return float(value)


_fallback_redactor: Redactor | None = None


def _redactor() -> Redactor:
    """The configured redactor (``OTEL_TDD_REDACT_KEYS`` included), else the default one."""
    global _fallback_redactor
    runtime = _runtime.RUNTIME
    if runtime is not None:
        return runtime.redactor
    if _fallback_redactor is None:
        _fallback_redactor = Redactor()
    return _fallback_redactor


def _error_text(error: BaseException) -> str:
    """``Type: message`` of a failed check, redacted: driver errors quote DSNs and URLs."""
    try:
        text = f"{type(error).__name__}: {error}"
    except Exception:
        text = f"{type(error).__name__}: <unprintable>"
    return _redactor().text(text)


def _safe_url(url: str) -> str:
    """A URL fit for a health answer: credentials in it masked."""
    return _redactor().text(url)


def _critical(message: str, **extra: Any) -> dict[str, Any]:
    return {"status": CRITICAL, "message": message, **extra}


def _normalize(name: str, raw: object) -> dict[str, Any]:
    """A check's return value as a result dict; anything malformed is critical, with the reason."""
    if not isinstance(raw, Mapping):
        return _critical(
            f"check {name!r} returned {type(raw).__name__}, expected a dict with a 'status' "
            f"of {', '.join(STATUSES)}"
        )
    result = {str(key): value for key, value in raw.items()}
    status = result.get("status")
    normalized = status.strip().lower() if isinstance(status, str) else status
    if normalized not in STATUSES:
        # Redacted like a valid result: the check's other fields reach /health all the same,
        # and the bad status itself may be a secret.
        redacted = _redactor().mapping(result)
        shown = _redactor().text(repr(status))
        redacted.update(
            _critical(
                f"check {name!r} returned status={shown}, expected one of {', '.join(STATUSES)}"
            )
        )
        return redacted
    result["status"] = normalized
    message = result.get("message")
    result["message"] = f"{name} is {normalized}" if message is None else str(message)
    # A check's own fields and message reach /health and the log: redacted as log data.
    redacted = _redactor().mapping(result)
    redacted["message"] = _redactor().text(redacted["message"])
    return redacted


@dataclass(frozen=True)
class _Check:
    name: str
    func: Callable[[], Any]
    critical: bool
    timeout_s: float


@dataclass
class _Slot:
    """One check's run: filled by the check's thread, read by the monitor."""

    check: _Check
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, Any] | None = None
    duration_s: float = 0.0


@dataclass(frozen=True)
class _Report:
    body: dict[str, Any]
    # Names of checks registered critical=True that report critical: these fail readiness.
    failing: tuple[str, ...]
    at: float


# --- the monitor -----------------------------------------------------------------------------


class HealthMonitor:
    """Registry and runner of health checks; see the module docstring for the behaviour.

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
        if isinstance(cache_ttl_s, bool) or not isinstance(cache_ttl_s, (int, float)):
            raise TypeError(f"cache_ttl_s={cache_ttl_s!r} is invalid: expected seconds >= 0")
        if not math.isfinite(cache_ttl_s) or cache_ttl_s < 0:
            raise ValueError(f"cache_ttl_s={cache_ttl_s!r} is invalid: expected seconds >= 0")
        self.cache_ttl_s = float(cache_ttl_s)
        self.default_timeout_s = _validate_timeout("default_timeout_s", default_timeout_s)
        self.heartbeat_timeout_s = (
            None
            if heartbeat_timeout_s is None
            else _validate_timeout("heartbeat_timeout_s", heartbeat_timeout_s)
        )
        self._checks: dict[str, _Check] = {}
        self._lock = threading.Lock()  # guards _checks, _hung, _last_status
        self._run_lock = threading.Lock()  # one run at a time; waiters reuse its report
        self._hung: dict[str, _Slot] = {}
        self._last_status: dict[str, str] = {}
        self._report: _Report | None = None
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
            timeout_s = _validate_timeout("timeout_s", timeout_s)
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
            self._checks[check_name] = _Check(
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

    def _current_report(self, use_cache: bool = True) -> _Report:
        report = self._report
        if use_cache and report is not None and time.monotonic() - report.at < self.cache_ttl_s:
            return report
        with self._run_lock:
            # Another caller may have run the checks while this one waited for the lock.
            report = self._report
            if use_cache and report is not None and time.monotonic() - report.at < self.cache_ttl_s:
                return report
            self._run_started = time.monotonic()
            try:
                report = self._execute()
            finally:
                self._run_started = None
            self._report = report
            return report

    def _execute(self) -> _Report:
        with self._lock:
            checks = list(self._checks.values())
            hung = dict(self._hung)
        slots: list[_Slot] = []
        results: dict[str, dict[str, Any]] = {}
        durations: dict[str, float] = {}
        for check in checks:
            if check.name in hung:
                results[check.name] = _critical(
                    f"check {check.name!r} is still running from an earlier run that timed out "
                    f"after {check.timeout_s:g}s"
                )
                durations[check.name] = check.timeout_s
                continue
            slot = _Slot(check)
            slots.append(slot)
            threading.Thread(
                target=self._call, args=(slot,), name=f"otel-tdd-health-{check.name}", daemon=True
            ).start()
        started = time.monotonic()
        for slot in slots:
            remaining = started + slot.check.timeout_s - time.monotonic()
            finished = slot.done.wait(max(0.0, remaining))
            with self._lock:
                if not finished and not slot.done.is_set():
                    self._hung[slot.check.name] = slot
                    results[slot.check.name] = _critical(
                        f"check {slot.check.name!r} timed out after {slot.check.timeout_s:g}s"
                    )
                    durations[slot.check.name] = time.monotonic() - started
                    continue
            assert slot.result is not None
            results[slot.check.name] = slot.result
            durations[slot.check.name] = slot.duration_s
        ordered = {check.name: results[check.name] for check in checks}
        report = self._summarize(checks, ordered)
        self._record(checks, ordered, durations)
        return report

    def _call(self, slot: _Slot) -> None:
        check = slot.check
        started = time.perf_counter()
        try:
            result = _normalize(check.name, check.func())
        except Exception as error:
            result = _critical(
                f"check {check.name!r} failed: {_error_text(error)}",
                error=type(error).__name__,
            )
        slot.duration_s = time.perf_counter() - started
        slot.result = result
        slot.done.set()
        with self._lock:
            if self._hung.get(check.name) is slot:
                del self._hung[check.name]

    @staticmethod
    def _summarize(checks: list[_Check], results: dict[str, dict[str, Any]]) -> _Report:
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
            "timestamp": _utc_now(),
            "checks": results,
            "summary": {**counts, "total": len(results)},
            "healthy_count": counts[HEALTHY],
            "critical_count": counts[CRITICAL],
        }
        return _Report(body, failing, time.monotonic())

    def _record(
        self,
        checks: list[_Check],
        results: dict[str, dict[str, Any]],
        durations: dict[str, float],
    ) -> None:
        """Metrics for every run, a log record for every change of status. Never raises."""
        try:
            from otel_tdd.metrics import catalog

            for name, result in results.items():
                attributes = {"check": name}
                catalog.health_check_status.set(STATUS_VALUE[result["status"]], attributes)
                catalog.health_check_duration.record(durations[name], attributes)
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
        interval = _validate_timeout("interval_s", interval_s)
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
            "timestamp": _utc_now(),
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
        body = {"status": "ready", "overall_status": overall, "timestamp": _utc_now()}
        return HealthResponse(body, 200)

    def get_detailed_status(self) -> HealthResponse:
        """The full report; 503 when overall critical or shutting down (``shutting_down``: true).

        Plus ``telemetry_dropped``: items lost per signal since the process started
        (the running totals of ``tdd_telemetry_dropped_total``).
        """
        from otel_tdd.export_accounting import dropped_totals

        body = self.run_all_checks()
        body["telemetry_dropped"] = dropped_totals()
        if is_shutting_down():
            body["shutting_down"] = True
            return HealthResponse(body, 503)
        return HealthResponse(body, 503 if body["overall_status"] == CRITICAL else 200)


def _not_ready(reason: str, **extra: Any) -> HealthResponse:
    body = {"status": "not_ready", "reason": reason, **extra, "timestamp": _utc_now()}
    return HealthResponse(body, 503)


def _log_change(check: _Check, status: str, previous: str | None, result: dict[str, Any]) -> None:
    from otel_tdd.structured_logging import StructuredLogger

    logger = StructuredLogger("otel_tdd.health")
    data = {
        "check": check.name,
        "status": status,
        "previous_status": previous,
        "critical_check": check.critical,
        "detail": result.get("message"),
    }
    if status == HEALTHY:
        logger.info(f"Health check {check.name} recovered", data)
    elif status == CRITICAL and check.critical:
        logger.error(f"Health check {check.name} is critical", data)
    else:
        logger.warning(f"Health check {check.name} is {status}", data)


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


# --- built-in checks: each one line to opt in -------------------------------------------------
#
#     health.register_check("database_connection", database_check("data/framework.db"))
#     health.register_check("memory_usage", memory_check())
#     health.register_check("disk_space", disk_space_check("/var/lib/app"))
#     health.register_check("otlp_endpoint", otlp_endpoint_check(), critical=False)
#     health.register_check("alertmanager", alertmanager_check(), critical=False)


def _thresholds(warning: float, critical: float) -> tuple[float, float]:
    for what, value in (("warning_percent", warning), ("critical_percent", critical)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{what}={value!r} is invalid: expected a percentage")
        if not 0 < value <= 100:
            raise ValueError(f"{what}={value!r} is invalid: expected 0 < percent <= 100")
    if warning > critical:
        raise ValueError(
            f"warning_percent={warning!r} is above critical_percent={critical!r}: "
            "expected warning <= critical"
        )
    return float(warning), float(critical)


def _grade(percent: float, warning: float, critical: float) -> str:
    if percent >= critical:
        return CRITICAL
    if percent >= warning:
        return WARNING
    return HEALTHY


def database_check(
    target: str | os.PathLike[str] | Callable[[], Any],
    *,
    query: str = "SELECT 1",
    warning_ms: float = 250.0,
    database: str | None = None,
) -> CheckFunc:
    """Connect, run ``query``, close; report ``response_time_ms``.

    ``target``: an SQLite file (opened read-write and never created: a missing
    database is a failure, not a new empty file) or any DB-API ``connect``
    callable (``lambda: psycopg.connect(dsn)``). Slower than ``warning_ms`` is a
    warning. Also sets ``tdd_database_up{database}`` and counts failures in
    ``tdd_database_connections_failed_total{database}``, which the DatabaseDown
    alert and the dashboards read.
    """
    connect: Callable[[], Any]
    label: str
    if isinstance(target, (str, os.PathLike)):
        path = Path(target)
        label = database or path.name
        uri = path.resolve().as_uri() + "?mode=rw"

        def connect() -> Any:
            return sqlite3.connect(uri, uri=True, timeout=2.0)

    elif callable(target):
        connect = target
        label = database or str(getattr(target, "__name__", "database"))
    else:
        raise TypeError(
            f"database_check target {target!r} is invalid: expected an SQLite path or a "
            "DB-API connect callable"
        )
    warn_ms = _validate_timeout("warning_ms", warning_ms)

    def check() -> dict[str, Any]:
        from otel_tdd.metrics import catalog

        attributes = {"database": label}
        started = time.perf_counter()
        try:
            connection = connect()
            try:
                cursor = connection.cursor()
                cursor.execute(query)
                cursor.fetchone()
                cursor.close()
            finally:
                connection.close()
        except Exception as error:
            elapsed_ms = (time.perf_counter() - started) * 1000
            catalog.database_up.set(0, attributes)
            catalog.database_connections_failed.add(1, attributes)
            return _critical(
                f"Database unreachable: {_error_text(error)}",
                response_time_ms=round(elapsed_ms, 2),
                database=label,
            )
        elapsed_ms = (time.perf_counter() - started) * 1000
        catalog.database_up.set(1, attributes)
        if elapsed_ms > warn_ms:
            return {
                "status": WARNING,
                "response_time_ms": round(elapsed_ms, 2),
                "database": label,
                "message": f"Database slow: {elapsed_ms:.0f} ms (warning above {warn_ms:g} ms)",
            }
        return {
            "status": HEALTHY,
            "response_time_ms": round(elapsed_ms, 2),
            "database": label,
            "message": "Database responsive",
        }

    return check


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _process_rss_bytes() -> int | None:
    try:
        fields = Path("/proc/self/statm").read_text().split()
        return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        psutil: Any = importlib.import_module("psutil")  # optional: only where /proc is absent
        return int(psutil.Process().memory_info().rss)
    except Exception:
        return None


def _memory_usage() -> tuple[float, str, int] | None:
    """(percent used, scope, limit bytes): the container's cgroup limit when it has one."""
    limit = _read_int("/sys/fs/cgroup/memory.max")
    current = _read_int("/sys/fs/cgroup/memory.current")
    if limit and current is not None:
        return current / limit * 100, "cgroup", limit
    try:
        info: dict[str, int] = {}
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            info[key] = int(rest.split()[0]) * 1024
        total, available = info["MemTotal"], info["MemAvailable"]
        return (total - available) / total * 100, "system", total
    except (OSError, KeyError, ValueError, IndexError, ZeroDivisionError):
        pass
    try:
        psutil: Any = importlib.import_module("psutil")
        memory = psutil.virtual_memory()
        return float(memory.percent), "system", int(memory.total)
    except Exception:
        return None


def memory_check(
    *,
    warning_percent: float = 80.0,
    critical_percent: float = 90.0,
    rss_warning_bytes: int | None = None,
    rss_critical_bytes: int | None = None,
) -> CheckFunc:
    """Memory in use against the container's limit (cgroup v2), else the machine's.

    Reports ``usage_percent``, ``rss_bytes`` (this process) and ``memory_scope``
    (cgroup or system). Thresholds apply to the percentage and, when given, to RSS.
    """
    warning, critical = _thresholds(warning_percent, critical_percent)
    for what, value in (
        ("rss_warning_bytes", rss_warning_bytes),
        ("rss_critical_bytes", rss_critical_bytes),
    ):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value <= 0
        ):
            raise ValueError(f"{what}={value!r} is invalid: expected a whole number of bytes > 0")

    def check() -> dict[str, Any]:
        usage = _memory_usage()
        rss = _process_rss_bytes()
        if usage is None:
            return {"status": WARNING, "message": "Memory statistics unavailable", "rss_bytes": rss}
        percent, scope, limit = usage
        status = _grade(percent, warning, critical)
        if rss is not None:
            if rss_critical_bytes is not None and rss >= rss_critical_bytes:
                status = CRITICAL
            elif rss_warning_bytes is not None and rss >= rss_warning_bytes and status == HEALTHY:
                status = WARNING
        messages = {
            HEALTHY: "Memory usage normal",
            WARNING: "Memory usage elevated",
            CRITICAL: "Memory usage critical",
        }
        return {
            "status": status,
            "usage_percent": round(percent, 1),
            "rss_bytes": rss,
            "memory_scope": scope,
            "limit_bytes": limit,
            "message": messages[status],
        }

    return check


def disk_space_check(
    path: str | os.PathLike[str] = "/",
    *,
    warning_percent: float = 85.0,
    critical_percent: float = 95.0,
) -> CheckFunc:
    """Space used on the filesystem holding ``path``, against warning/critical percentages."""
    warning, critical = _thresholds(warning_percent, critical_percent)
    where = os.fspath(path)

    def check() -> dict[str, Any]:
        usage = shutil.disk_usage(where)
        # total - free, not used: blocks reserved for root are not ours to use either.
        percent = (usage.total - usage.free) / usage.total * 100 if usage.total else 100.0
        status = _grade(percent, warning, critical)
        return {
            "status": status,
            "path": where,
            "usage_percent": round(percent, 1),
            "free_bytes": usage.free,
            "total_bytes": usage.total,
            "message": {
                HEALTHY: "Disk space sufficient",
                WARNING: "Disk space low",
                CRITICAL: "Disk space critically low",
            }[status],
        }

    return check


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    text = url if "://" in url else "http://" + url
    parts = urlsplit(text)
    if not parts.hostname:
        raise ValueError(f"{url!r} is not a URL with a host")
    port = parts.port or (443 if parts.scheme == "https" else default_port)
    return parts.hostname, port


def _configured_otlp_endpoint() -> str:
    runtime = _runtime.RUNTIME
    if runtime is not None:
        explicit = runtime.settings.otlp_endpoints.get("traces")
        if explicit:
            return explicit
    for variable in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        value = os.environ.get(variable, "").strip()
        if value:
            return value
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf").strip()
    # The spec's defaults when nothing is set.
    return "http://localhost:4317" if protocol == "grpc" else "http://localhost:4318"


def otlp_endpoint_check(
    endpoint: str | None = None, *, connect_timeout_s: float = 2.0
) -> CheckFunc:
    """Can we open a TCP connection to the OTLP endpoint (the Collector)?

    ``endpoint`` defaults to what the exporters use: ``configure(endpoint=...)``,
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``OTEL_EXPORTER_OTLP_ENDPOINT``, then the
    spec's default. A TCP connect works for OTLP/HTTP and gRPC alike. Register it
    with ``critical=False``: losing the Collector should not take the app out of
    rotation (the exporters queue and count what they drop).
    """
    url = endpoint if endpoint is not None else _configured_otlp_endpoint()
    host, port = _host_port(url, 4318)
    timeout = _validate_timeout("connect_timeout_s", connect_timeout_s)

    def check() -> dict[str, Any]:
        started = time.perf_counter()
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except OSError as error:
            return _critical(
                f"OTLP endpoint unreachable: {_error_text(error)}", endpoint=_safe_url(url)
            )
        elapsed_ms = (time.perf_counter() - started) * 1000
        return {
            "status": HEALTHY,
            "endpoint": _safe_url(url),
            "response_time_ms": round(elapsed_ms, 2),
            "message": "OTLP endpoint reachable",
        }

    return check


def alertmanager_check(url: str | None = None, *, request_timeout_s: float = 2.0) -> CheckFunc:
    """Does Alertmanager answer ``GET /-/healthy`` with 200?

    ``url`` defaults to ``OTEL_TDD_ALERTMANAGER_URL`` (or ``configure(alertmanager_url=)``);
    with neither, this raises at registration. No HTTP proxy is used: the check is
    about this instance's own path to Alertmanager.
    """
    if url is None:
        runtime = _runtime.RUNTIME
        url = runtime.settings.alertmanager_url if runtime is not None else None
        url = url or os.environ.get("OTEL_TDD_ALERTMANAGER_URL", "").strip() or None
    if url is None:
        raise ValueError(
            "alertmanager_check() needs a URL: pass url= or set OTEL_TDD_ALERTMANAGER_URL"
        )
    _host_port(url, 9093)  # validates now rather than at the first probe
    base = url.rstrip("/")
    timeout = _validate_timeout("request_timeout_s", request_timeout_s)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def check() -> dict[str, Any]:
        started = time.perf_counter()
        try:
            with opener.open(base + "/-/healthy", timeout=timeout) as response:
                code = response.status
        except urllib.error.HTTPError as error:
            code = error.code
            error.close()
        except (OSError, ValueError) as error:
            return _critical(f"Alertmanager unreachable: {_error_text(error)}", url=_safe_url(base))
        elapsed_ms = (time.perf_counter() - started) * 1000
        if code != 200:
            return _critical(
                f"Alertmanager answered HTTP {code}", url=_safe_url(base), http_status=code
            )
        return {
            "status": HEALTHY,
            "url": _safe_url(base),
            "response_time_ms": round(elapsed_ms, 2),
            "message": "Alertmanager healthy",
        }

    return check
