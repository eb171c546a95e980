"""``configure()``, ``force_flush()`` and ``shutdown()``: build everything, then install it.

Providers come from :mod:`otel_tdd.providers`, the log pipelines from
:mod:`otel_tdd.logs.pipeline`; everything is built before anything is installed,
so a failure leaves nothing half-configured. ``shutdown()`` is bounded and says
what was lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from dataclasses import replace
from typing import Any

from opentelemetry import metrics, trace

from otel_tdd import _hooks, _otel_private, _runtime
from otel_tdd._util import ReportOnce
from otel_tdd.config import ConfigError, Settings, load_settings
from otel_tdd.export_accounting import (
    ExportDeadline,
    dropped_totals,
    late_totals,
    record_dropped,
)
from otel_tdd.logs import guard as logging_guard
from otel_tdd.logs.handler import JsonLogHandler
from otel_tdd.logs.pipeline import build_pipeline
from otel_tdd.logs.steps import TraceIdSampler
from otel_tdd.metrics import catalog
from otel_tdd.ops_server import start_ops_server
from otel_tdd.providers import INSTRUMENTATION_NAME, Providers, TestHooks, build_providers
from otel_tdd.redaction import Redactor

__all__ = ["TestHooks", "configure", "force_flush", "is_configured", "shutdown"]

_lock = threading.RLock()
# dropped_totals() when each runtime (by generation) was built: shutdown() reports the difference.
_dropped_at_configure: dict[int, dict[str, int]] = {}
_late_at_configure: dict[int, dict[str, int]] = {}


class _ErrorReporter:
    """Reports a failing telemetry step once per kind on stderr and counts every drop."""

    def __init__(self) -> None:
        self._reported = ReportOnce()

    def __call__(self, error: BaseException) -> None:
        record_dropped("logs", 1)
        kind = type(error).__name__
        if self._reported.first(kind):
            print(f"otel-tdd: a log record was dropped: {kind}: {error}", file=sys.stderr)


def _on_suppressed(key: str) -> None:
    catalog.log_records_suppressed.add(1, {"reason": "rate_limit", "limiter": key})


def _install_logging(settings: Settings) -> JsonLogHandler | None:
    root = logging.getLogger()
    root.setLevel(settings.log_level)
    for handler in list(root.handlers):
        if isinstance(handler, JsonLogHandler):
            root.removeHandler(handler)
    if not settings.capture_logging:
        _hooks.set_framework_logs(False)
        return None
    handler = JsonLogHandler()
    root.addHandler(handler)
    # The app's own basicConfig/dictConfig/fileConfig keep their effect and not ours away.
    logging_guard.install(
        handler,
        exporting=bool(settings.logs_exporters),
        debug=settings.log_level < logging.INFO,
    )
    # Forwarding of web servers' own loggers lives in otel_tdd.auto (registered by
    # otel_tdd/__init__): import hooks only, nothing runs until a server is imported.
    _hooks.set_framework_logs(settings.framework_logs)
    return handler


def _remove_logging(handler: JsonLogHandler) -> None:
    logging_guard.uninstall(handler)
    logging.getLogger().removeHandler(handler)


def is_configured() -> bool:
    runtime = _runtime.RUNTIME
    return runtime is not None and not runtime.closed


def configure(
    service_name: str | None = None, *, _hooks: TestHooks | None = None, **overrides: Any
) -> _runtime.Runtime:
    """Build the Resource and the Tracer, Meter and Logger providers; install them globally.

    Arguments override the environment (``OTEL_*``, ``OTEL_TDD_*``); an invalid value
    raises :class:`ConfigError`. Calling it again with the same settings returns the
    same runtime; with different settings, call :func:`shutdown` first.
    """
    if service_name is not None:
        overrides["service_name"] = service_name
    settings = load_settings(overrides)
    hooks = _hooks or TestHooks()
    with _lock:
        existing = _runtime.RUNTIME
        if existing is not None and not existing.closed:
            if settings == existing.settings and _hooks is None:
                return existing
            raise ConfigError(
                "configure()",
                overrides,
                "the settings of the first call; call otel_tdd.shutdown() before configuring again",
            )
        return _install(_build(settings, hooks))


def _build(settings: Settings, hooks: TestHooks) -> _runtime.Runtime:
    """The runtime, built but not installed; on error what was built is shut down."""
    providers = build_providers(settings, hooks)
    try:
        redactor = Redactor(settings.redact_keys)
        common: dict[str, Any] = {
            "environment": settings.environment,
            "redactor": redactor,
            "log_stream": settings.log_stream,
            "logger_provider": providers.logger_provider,
            "on_suppressed": _on_suppressed,
            "on_error": _ErrorReporter(),
            "stream": hooks.stream,
        }
        return _runtime.Runtime(
            settings=settings,
            generation=_runtime.next_generation(),
            tracer_provider=providers.tracer_provider,
            meter_provider=providers.meter_provider,
            logger_provider=providers.logger_provider,
            tracer=providers.tracer,
            meter=providers.meter,
            redactor=redactor,
            # StructuredLogger samples before building a record (cheaper); stdlib records here.
            logger_pipeline=build_pipeline(**common),
            stdlib_pipeline=build_pipeline(
                **common, sampler=TraceIdSampler(settings.log_sample_rate)
            ),
        )
    except Exception:
        _shutdown_providers(providers)
        raise


def _shutdown_providers(providers: Providers) -> None:
    for provider in (providers.tracer_provider, providers.meter_provider):
        if provider is not None:
            provider.shutdown()
    if providers.logger_provider is not None:
        providers.logger_provider.shutdown()


def _install(runtime: _runtime.Runtime) -> _runtime.Runtime:
    settings = runtime.settings
    if runtime.tracer_provider is not None:
        _otel_private.reset_api_globals()
        trace.set_tracer_provider(runtime.tracer_provider)
        assert runtime.meter_provider is not None
        metrics.set_meter_provider(runtime.meter_provider)
        if runtime.logger_provider is not None:
            # Imported here: the logs API is only needed when OTLP logs are configured.
            from opentelemetry import _logs

            _logs.set_logger_provider(runtime.logger_provider)
    catalog.bind(runtime.meter, settings.metric_cardinality_limit)
    handler = _install_logging(settings)
    if handler is not None:
        runtime.closers.append(lambda: _remove_logging(handler))
    _dropped_at_configure[runtime.generation] = dropped_totals()
    _late_at_configure[runtime.generation] = late_totals()
    _register_fork_hook()
    _runtime.install(runtime)
    try:
        _start_ops_server(runtime)
    except Exception:
        shutdown()
        raise
    return runtime


_fork_hook_registered = False


def _register_fork_hook() -> None:
    """Once per process, not per configure(): each registration lives until exit."""
    global _fork_hook_registered
    if not _fork_hook_registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _fork_hook_registered = True


def _after_fork_in_child() -> None:
    """What the parent's threads did is not the child's to stop.

    The SDK re-creates its own export threads in the child. The ops server's
    selector thread and the Alertmanager sender stayed in the parent: the child
    closes its copies of the sockets and starts its own sender on its first
    alert. Without this, the child's shutdown() waited for threads it does not have.
    """
    runtime = _runtime.RUNTIME
    if runtime is None or runtime.closed:
        return
    server, runtime.ops_server = runtime.ops_server, None
    if server is not None:
        runtime.closers[:] = [
            c for c in runtime.closers if getattr(c, "__self__", None) is not server
        ]
        with contextlib.suppress(Exception):
            server.stop()  # in a child: closes the inherited sockets, waits for nothing
    client, runtime.alertmanager = runtime.alertmanager, None
    if client is not None:
        runtime.drains[:] = [
            d for d in runtime.drains if getattr(d, "__self__", None) is not client
        ]


def _start_ops_server(runtime: _runtime.Runtime) -> None:
    if runtime.settings.ops_port is not None:
        server = start_ops_server(runtime.settings.ops_host, runtime.settings.ops_port)
        runtime.ops_server = server
        runtime.closers.append(server.stop)


def force_flush(timeout_millis: int = 10_000) -> bool:
    """Export everything buffered now; True when every provider flushed in time."""
    runtime = _runtime.RUNTIME
    if runtime is None or runtime.closed:
        return True
    results = [
        provider.force_flush(timeout_millis)
        for provider in (runtime.tracer_provider, runtime.meter_provider, runtime.logger_provider)
        if provider is not None
    ]
    return all(result is not False for result in results)


def shutdown(timeout_millis: int = 10_000) -> bool:
    """Flush and close everything; safe to call twice. True when nothing was lost.

    Bounded by ``timeout_millis``: queued alerts get at most half of it, the
    providers' final flush the rest (a request already on the wire to a host that
    never answers still runs to its own OTLP timeout). False, with one line on
    stderr, when telemetry was lost during this configuration's life: a failed or
    abandoned export, a queue overflow, alerts still queued.
    """
    with _lock:
        runtime = _runtime.RUNTIME
        if runtime is None or runtime.closed:
            return True
        timeout_s = max(0, timeout_millis) / 1000
        started = time.monotonic()
        clean = _run_closers(runtime)
        lost = _drain(runtime, timeout_s, started)
        remaining_ms = max(0, int((timeout_s - (time.monotonic() - started)) * 1000))
        clean = _flush_providers(runtime, remaining_ms, timeout_millis, lost) and clean
        late = _since_configure(_late_at_configure, late_totals(), runtime)
        lost.extend(_described(_dropped_since_configure(runtime, late)))
        if late:
            print(
                f"otel-tdd: made after the shutdown began, not exported: {_described(late)[0]}",
                file=sys.stderr,
            )
        if lost:
            clean = False
            print(
                "otel-tdd: telemetry was lost: "
                + "; ".join(lost)
                + " (counted in tdd_telemetry_dropped_total and tdd_alerts_failed_total)",
                file=sys.stderr,
            )
        _runtime.install(_closed(runtime))
        return clean


def _run_closers(runtime: _runtime.Runtime) -> bool:
    clean = True
    for closer in reversed(runtime.closers):
        try:
            closer()
        except Exception as error:  # one failing closer must not keep the rest from running
            clean = False
            print(f"otel-tdd: shutdown step failed: {error!r}", file=sys.stderr)
    return clean


def _drain(runtime: _runtime.Runtime, timeout_s: float, started: float) -> list[str]:
    """Let queued alerts go, each drain within at most half the budget; what was lost."""
    lost: list[str] = []
    for drain in runtime.drains:
        budget = min(timeout_s / 2, timeout_s - (time.monotonic() - started))
        try:
            if not drain(max(0.0, budget)):
                lost.append("alerts still queued")
        except Exception as error:
            lost.append(f"a drain failed ({error!r})")
    return lost


def _flush_providers(
    runtime: _runtime.Runtime, remaining_ms: int, timeout_millis: int, lost: list[str]
) -> bool:
    clean = True
    # The SDK's force_flush ignores its timeout: this deadline enforces it (and counts).
    deadline = ExportDeadline(remaining_ms / 1000)
    # Spans first: their end may still write log records and metrics.
    for provider in (runtime.tracer_provider, runtime.logger_provider, runtime.meter_provider):
        if provider is None:
            continue
        try:
            if provider is not runtime.meter_provider:
                provider.force_flush(remaining_ms)
            # The meter provider's shutdown collects once more itself: a flush before it made
            # two exports, and the SDK clears exemplars at each, so the last point had none.
            provider.shutdown()
        except Exception as error:
            clean = False
            print(f"otel-tdd: provider shutdown failed: {error!r}", file=sys.stderr)
    if deadline.cancel():
        lost.append(f"telemetry export abandoned after {timeout_millis} ms")
    return clean


def _since_configure(
    at_configure: dict[int, dict[str, int]], now: dict[str, int], runtime: _runtime.Runtime
) -> dict[str, int]:
    before = at_configure.pop(runtime.generation, {})
    return {s: n - before.get(s, 0) for s, n in now.items() if n > before.get(s, 0)}


def _dropped_since_configure(runtime: _runtime.Runtime, late: dict[str, int]) -> dict[str, int]:
    """What this configuration lost, less what the app made after the shutdown began
    (that cannot be in a final flush: it is reported, not counted against the exit)."""
    dropped = _since_configure(_dropped_at_configure, dropped_totals(), runtime)
    lost = {s: n - late.get(s, 0) for s, n in dropped.items()}
    return {s: n for s, n in lost.items() if n > 0}


def _described(counts: dict[str, int]) -> list[str]:
    return [", ".join(f"{n} {s}" for s, n in counts.items())] if counts else []


def _closed(runtime: _runtime.Runtime) -> _runtime.Runtime:
    """What is left after shutdown(): JSON records still print; nothing exports or restarts."""
    meter = metrics.NoOpMeter(INSTRUMENTATION_NAME)
    catalog.bind(meter, runtime.settings.metric_cardinality_limit)
    return replace(
        runtime,
        generation=_runtime.next_generation(),
        tracer_provider=None,
        meter_provider=None,
        logger_provider=None,
        tracer=trace.NoOpTracer(),
        meter=meter,
        logger_pipeline=runtime.logger_pipeline.without_export(),
        stdlib_pipeline=runtime.stdlib_pipeline.without_export(),
        closers=[],
        drains=[],
        ops_server=None,
        alertmanager=None,
        closed=True,
    )
