"""The old name of :mod:`otel_tdd.performance`, kept for code written against it."""

from otel_tdd.performance import memory_usage_mb, performance_context, performance_tracked

__all__ = ["memory_usage_mb", "performance_context", "performance_tracked"]
