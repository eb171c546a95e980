"""The built-in health checks, each one line to opt in::

health.register_check("database_connection", database_check("data/framework.db"))
health.register_check("memory_usage", memory_check())
health.register_check("disk_space", disk_space_check("/var/lib/app"))
health.register_check("otlp_endpoint", otlp_endpoint_check(), critical=False)
health.register_check("alertmanager", alertmanager_check(), critical=False)
"""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from otel_tdd import _runtime
from otel_tdd._util import rss_bytes, seconds
from otel_tdd.config import load_settings, otlp_endpoint
from otel_tdd.health.status import (
    CRITICAL,
    HEALTHY,
    WARNING,
    CheckFunc,
    critical_result,
    error_text,
    safe_url,
)
from otel_tdd.metrics import catalog

__all__ = [
    "alertmanager_check",
    "database_check",
    "disk_space_check",
    "memory_check",
    "otlp_endpoint_check",
]


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
    warn_ms = seconds("warning_ms", warning_ms)

    def check() -> dict[str, Any]:
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
            return critical_result(
                f"Database unreachable: {error_text(error)}",
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
        psutil: Any = importlib.import_module("psutil")  # optional: only where /proc is absent
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
        rss = rss_bytes()
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
    """The traces endpoint the exporter uses: the configured settings, or the environment's
    alone before ``configure()`` (config.otlp_endpoint resolves both)."""
    runtime = _runtime.RUNTIME
    settings = runtime.settings if runtime is not None else load_settings()
    return otlp_endpoint(settings, "traces")


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
    timeout = seconds("connect_timeout_s", connect_timeout_s)

    def check() -> dict[str, Any]:
        started = time.perf_counter()
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except OSError as error:
            return critical_result(
                f"OTLP endpoint unreachable: {error_text(error)}", endpoint=safe_url(url)
            )
        elapsed_ms = (time.perf_counter() - started) * 1000
        return {
            "status": HEALTHY,
            "endpoint": safe_url(url),
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
    timeout = seconds("request_timeout_s", request_timeout_s)
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
            return critical_result(
                f"Alertmanager unreachable: {error_text(error)}", url=safe_url(base)
            )
        elapsed_ms = (time.perf_counter() - started) * 1000
        if code != 200:
            return critical_result(
                f"Alertmanager answered HTTP {code}", url=safe_url(base), http_status=code
            )
        return {
            "status": HEALTHY,
            "url": safe_url(base),
            "response_time_ms": round(elapsed_ms, 2),
            "message": "Alertmanager healthy",
        }

    return check
