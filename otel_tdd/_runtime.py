"""What ``configure()`` built, in one swappable object (state only: nothing here builds it).

Hot paths read ``RUNTIME`` instead of holding providers of their own, so a
re-configuration (tests, after fork, notebooks) reaches every logger and
decorator created before it. First use configures defaults through the hook
that ``otel_tdd/__init__`` registers in :mod:`otel_tdd._hooks` (the builder sits above).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from otel_tdd import _hooks

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

    from otel_tdd.alerting import AlertmanagerClient
    from otel_tdd.config import Settings
    from otel_tdd.logs.pipeline import LogPipeline
    from otel_tdd.ops_server import OpsServer
    from otel_tdd.redaction import Redactor

__all__ = [
    "RUNTIME",
    "Runtime",
    "current",
    "generation",
    "settings",
]


@dataclass
class Runtime:
    settings: Settings
    generation: int
    tracer_provider: TracerProvider | None
    meter_provider: MeterProvider | None
    logger_provider: LoggerProvider | None
    tracer: Tracer
    meter: Meter
    redactor: Redactor
    logger_pipeline: LogPipeline
    stdlib_pipeline: LogPipeline
    # Callables run by shutdown() before the providers flush (ops server, handlers).
    closers: list[Callable[[], None]] = field(default_factory=list)
    # Queues that shutdown() drains before the providers flush, each given the seconds it
    # may take; each returns False when it had to drop something (alerts still queued).
    drains: list[Callable[[float], bool]] = field(default_factory=list)
    # The ops server configure() started (OTEL_TDD_OPS_PORT), if any.
    ops_server: OpsServer | None = None
    # The Alertmanager sender, started by the first alert() when a URL is configured.
    alertmanager: AlertmanagerClient | None = None
    # True after shutdown(): records still print, nothing is exported, and first use does
    # not configure again (a log line in a late `finally` must not revive exporters).
    closed: bool = False


RUNTIME: Runtime | None = None
_generation = 0


def current() -> Runtime:
    """The active runtime, configuring with defaults on first use (not after shutdown())."""
    runtime = RUNTIME
    if runtime is None:
        if _hooks.autoconfigure is None:
            raise RuntimeError("otel_tdd is not configured: call otel_tdd.configure() first")
        _hooks.autoconfigure()
        runtime = RUNTIME
        assert runtime is not None
    return runtime


def install(runtime: Runtime | None) -> None:
    global RUNTIME
    RUNTIME = runtime


def next_generation() -> int:
    global _generation
    _generation += 1
    return _generation


def generation() -> int:
    return _generation


def settings() -> Settings:
    return current().settings
