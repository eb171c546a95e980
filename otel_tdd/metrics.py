"""The seed's metric catalog as OTel instruments, behind a cardinality guard.

Design notes: docs/metrics.md, "Implementation notes".
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.metrics import Counter, Histogram, Meter, NoOpMeter, UpDownCounter
from opentelemetry.metrics import _Gauge as Gauge

__all__ = ["OVERFLOW_VALUE", "CardinalityGuard", "MetricCatalog", "catalog"]

OVERFLOW_VALUE = "_other"
# Seconds buckets for latencies: 5 ms .. 10 s (the SDK's default buckets are for milliseconds).
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
MINUTES_AS_SECONDS_BUCKETS = (60.0, 300.0, 600.0, 900.0, 1500.0, 1800.0, 2700.0, 3600.0, 7200.0)

Attributes = Mapping[str, Any]

# Unit "1" makes the Collector's Prometheus exporter append "_ratio"; gauges whose
# names do not end in _ratio use an annotation unit ("{state}"), which it ignores.


class CardinalityGuard:
    """Caps the distinct values of each attribute of one metric."""

    def __init__(self, metric: str, limit: int) -> None:
        self.metric = metric
        self.limit = limit
        self._seen: dict[str, set[Any]] = {}
        self._lock = threading.Lock()
        self.trips = 0

    def __call__(self, attributes: Attributes) -> Attributes:
        seen = self._seen
        for key, value in attributes.items():
            values = seen.get(key)
            if values is not None and value in values:
                continue
            return self._admit(attributes)
        return attributes

    def _admit(self, attributes: Attributes) -> Attributes:
        """Slow path: a value not seen before. Returns attributes with overflow applied."""
        out: dict[str, Any] | None = None
        with self._lock:
            for key, value in attributes.items():
                values = self._seen.setdefault(key, set())
                if value in values:
                    continue
                if len(values) < self.limit:
                    values.add(value)
                    continue
                out = dict(attributes) if out is None else out
                out[key] = OVERFLOW_VALUE
        if out is None:
            return attributes
        self.trips += 1
        catalog.cardinality_overflow.add(1, {"metric": self.metric})
        return out


class _Guarded:
    """Common part of the guarded instruments: rebinding to a new meter keeps identity."""

    kind = ""

    def __init__(self, name: str, unit: str, description: str, **advice: Any) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self.advice = advice
        self._instrument: Any = None
        self._guard = CardinalityGuard(name, 100)

    def bind(self, meter: Meter, limit: int) -> None:
        create = getattr(meter, f"create_{self.kind}")
        self._instrument = create(
            self.name, unit=self.unit, description=self.description, **self.advice
        )
        self._guard = CardinalityGuard(self.name, limit)


class GuardedCounter(_Guarded):
    kind = "counter"

    def add(self, amount: int | float = 1, attributes: Attributes | None = None) -> None:
        self._instrument.add(amount, self._guard(attributes) if attributes else None)


class GuardedUpDownCounter(_Guarded):
    kind = "up_down_counter"

    def add(self, amount: int | float, attributes: Attributes | None = None) -> None:
        self._instrument.add(amount, self._guard(attributes) if attributes else None)


class GuardedHistogram(_Guarded):
    kind = "histogram"

    def __init__(
        self, name: str, unit: str, description: str, buckets: Sequence[float] = SECONDS_BUCKETS
    ) -> None:
        super().__init__(name, unit, description, explicit_bucket_boundaries_advisory=list(buckets))

    def record(self, amount: int | float, attributes: Attributes | None = None) -> None:
        self._instrument.record(amount, self._guard(attributes) if attributes else None)


class GuardedGauge(_Guarded):
    kind = "gauge"

    def set(self, amount: int | float, attributes: Attributes | None = None) -> None:
        self._instrument.set(amount, self._guard(attributes) if attributes else None)


class MetricCatalog:
    """Every metric otel-tdd and the seed's app record. ``catalog`` is the one instance."""

    def __init__(self) -> None:
        c, h, g = GuardedCounter, GuardedHistogram, GuardedGauge
        # Business
        self.epics_created = c("tdd_epics_created_total", "{epic}", "Epics created")
        self.tasks_completed = c("tdd_tasks_completed_total", "{task}", "Tasks completed")
        self.focus_sessions = c("tdd_focus_sessions_total", "{session}", "Focus sessions finished")
        self.focus_session_duration = h(
            "tdd_focus_session_duration_seconds",
            "s",
            "Length of focus sessions",
            MINUTES_AS_SECONDS_BUCKETS,
        )
        self.user_productivity_score = g(
            "tdd_user_productivity_score", "{score}", "Productivity score (aggregate, not per user)"
        )
        self.active_users = g("tdd_active_users", "{user}", "Users active in the last 5 minutes")
        self.concurrent_users = g("tdd_concurrent_users", "{user}", "Open user sessions")
        # Performance
        self.response_time = h("tdd_response_time_seconds", "s", "Response time of requests")
        self.database_query_duration = h(
            "tdd_database_query_duration_seconds", "s", "Database query time"
        )
        self.cache_hit_ratio = g("tdd_cache_hit_ratio", "1", "Cache hits / lookups")
        self.sync_duration = h("tdd_sync_duration_seconds", "s", "Bidirectional sync time")
        self.operation_duration = h(
            "tdd_operation_duration_seconds", "s", "Duration of performance_tracked operations"
        )
        self.threshold_exceeded = c(
            "tdd_performance_threshold_exceeded_total",
            "{event}",
            "Operations slower than their alert_threshold_ms",
        )
        # System
        self.memory_usage = g("tdd_memory_usage_bytes", "By", "Resident memory of the process")
        self.cpu_usage = g("tdd_cpu_usage_ratio", "1", "CPU use of the process (0-1 per core)")
        self.active_connections = g("tdd_active_connections", "{connection}", "Open DB connections")
        self.errors = c("tdd_errors_total", "{error}", "Application errors")
        self.database_connections_failed = c(
            "tdd_database_connections_failed_total", "{failure}", "Failed database connections"
        )
        self.database_up = g("tdd_database_up", "{state}", "1 when the database answers, else 0")
        # Security
        self.auth_attempts = c("tdd_auth_attempts_total", "{attempt}", "Authentication attempts")
        self.csrf_violations = c("tdd_csrf_violations_total", "{violation}", "CSRF violations")
        self.rate_limit_hits = c("tdd_rate_limit_hits_total", "{hit}", "Rate limiting activations")
        self.security_events = c("tdd_security_events_total", "{event}", "Security events")
        # The pipeline's own health
        self.telemetry_dropped = c(
            "tdd_telemetry_dropped_total", "{item}", "Telemetry dropped by otel-tdd, by signal"
        )
        self.log_records_suppressed = c(
            "tdd_log_records_suppressed_total", "{record}", "Log records suppressed by rate limits"
        )
        self.cardinality_overflow = c(
            "tdd_metric_cardinality_overflow_total",
            "{event}",
            "Attribute values collapsed into _other by the cardinality guard",
        )
        self.alerts_sent = c("tdd_alerts_sent_total", "{alert}", "Alerts posted to Alertmanager")
        self.alerts_failed = c(
            "tdd_alerts_failed_total", "{alert}", "Alerts that could not be sent"
        )
        self.health_check_status = g(
            "tdd_health_check_status", "{state}", "1 healthy, 0.5 warning, 0 critical"
        )
        self.health_check_duration = h(
            "tdd_health_check_duration_seconds", "s", "Health check duration"
        )
        self.bind(NoOpMeter("otel_tdd"), 100)

    def instruments(self) -> list[_Guarded]:
        return [value for value in vars(self).values() if isinstance(value, _Guarded)]

    def bind(self, meter: Meter, cardinality_limit: int) -> None:
        """Point every instrument at ``meter`` (called by configure())."""
        for instrument in self.instruments():
            instrument.bind(meter, cardinality_limit)
        # Counters that alerts watch with increase() start at 0: Prometheus cannot see the
        # first increment of a series that appears already above 0.
        for signal in ("traces", "metrics", "logs"):
            self.telemetry_dropped.add(0, {"signal": signal})
        self.csrf_violations.add(0)
        # The same for the security panels' counts (Failed logins, Rate-limit hits): a burst
        # before the first scrape would otherwise read as 0 in increase().
        for result in ("success", "failure"):
            self.auth_attempts.add(0, {"result": result})
        self.rate_limit_hits.add(0)
        self.alerts_failed.add(0, {"reason": "unreachable"})


catalog = MetricCatalog()

# Re-exported for typing users' own instruments alongside the catalog.
__all__ += ["Counter", "Gauge", "Histogram", "UpDownCounter"]
