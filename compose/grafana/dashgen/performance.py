"""TDD Framework - Performance: latency percentiles, database, cache, resources."""

from __future__ import annotations

from .levels import (
    ANY_PER_S,
    CPU_THRESHOLDS,
    DB_QUERY_CRITICAL_S,
    DB_QUERY_WARNING_S,
    HOST_MEMORY_CRITICAL_BYTES,
    HOST_MEMORY_WARNING_BYTES,
    LATENCY_THRESHOLDS,
    SYNC_CRITICAL_S,
    SYNC_WARNING_S,
    VOLUME,
)
from .model import AlertStep, Dashboard, Logs, TimeSeries, row
from .promql import ERROR_LOGS, SPAN_ERROR, quantile, sel

ROWS = (
    row(
        "Response time",
        TimeSeries(
            "Response time P50 / P95 / P99",
            "s",
            [
                ('job:tdd_response_time_seconds:p50_5m{job=~"$service"}', "p50 {{job}}"),
                ('job:tdd_response_time_seconds:p95_5m{job=~"$service"}', "p95 {{job}}"),
                ('job:tdd_response_time_seconds:p99_5m{job=~"$service"}', "p99 {{job}}"),
            ],
            description="Per service over 5m, from the recording rules the alerts use "
            "(all instances of a service together).",
            thresholds=LATENCY_THRESHOLDS,
            min_value=0,
        ),
        TimeSeries(
            "Response time P95 by endpoint",
            "s",
            [(quantile(0.95, "tdd_response_time_seconds", by="endpoint"), "{{endpoint}}")],
            description="p95 per endpoint over the selected instances, from the raw buckets.",
            thresholds=LATENCY_THRESHOLDS,
            min_value=0,
            exemplars=True,
        ),
        TimeSeries(
            "Response time P95 by instance",
            "s",
            [(quantile(0.95, "tdd_response_time_seconds", by="instance"), "{{instance}}")],
            description="p95 per instance: one slow process among healthy ones.",
            thresholds=LATENCY_THRESHOLDS,
            min_value=0,
            exemplars=True,
        ),
        TimeSeries(
            "Requests by status",
            "reqps",
            [
                (
                    f"sum by (status) (rate({sel('tdd_response_time_seconds_count')}"
                    "[$__rate_interval]))",
                    "{{status}}",
                )
            ],
            description="Request rate per response status.",
            stacked=True,
            no_thresholds=VOLUME,
        ),
        TimeSeries(
            "Tracked operations P95",
            "s",
            [(quantile(0.95, "tdd_operation_duration_seconds", by="operation"), "{{operation}}")],
            description="p95 of functions decorated with @performance_tracked. Orange and red "
            "at the response-time thresholds ({SlowResponseTime} s, {HighResponseTime} s): "
            "an operation that slow makes its request slow.",
            min_value=0,
            thresholds=LATENCY_THRESHOLDS,
            exemplars=True,
        ),
        TimeSeries(
            "Performance thresholds exceeded",
            "ops",
            [
                (
                    f"sum by (operation) (rate({sel('tdd_performance_threshold_exceeded_total')}"
                    "[$__rate_interval]))",
                    "{{operation}}",
                )
            ],
            description="performance_context(alert_threshold_ms=...) breaches per second. "
            "Orange: any.",
            thresholds=((None, "green"), (ANY_PER_S, "orange")),
        ),
    ),
    row(
        "Error logs",
        Logs(
            "Error logs",
            ERROR_LOGS,
            description="ERROR and FATAL records of every service, newest first, from "
            "VictoriaLogs (severity_number >= 17): what failed while latency rose. Open a "
            "record: its trace_id opens the trace in Jaeger, its spans' timings beside the "
            "logs. Not filtered by the Service variable (a Prometheus job name).",
        ),
    ),
    row(
        "Spans (span_metrics connector in the Collector)",
        TimeSeries(
            "Span calls by span name (top 10)",
            "ops",
            [
                (
                    f"topk(10, sum by (span_name) (rate({sel('traces_span_metrics_calls_total')}"
                    "[$__rate_interval])))",
                    "{{span_name}}",
                )
            ],
            description="Spans per second, computed by the Collector from every span "
            "(RED metrics without instrumenting anything else).",
            span=8,
            no_thresholds=VOLUME,
        ),
        TimeSeries(
            "Span error ratio",
            "percentunit",
            [
                (
                    "sum by (job) (rate("
                    f"{sel('traces_span_metrics_calls_total', SPAN_ERROR)}[$__rate_interval]))"
                    " / sum by (job) (rate("
                    f"{sel('traces_span_metrics_calls_total')}[$__rate_interval]))",
                    "{{job}}",
                )
            ],
            description="Share of spans with status ERROR, per service.",
            thresholds=((None, "green"), (0.01, "orange"), (0.05, "red")),
            min_value=0,
            span=8,
        ),
        TimeSeries(
            "Span duration P95 by span name",
            "ms",
            [
                (
                    quantile(0.95, "traces_span_metrics_duration_milliseconds", by="span_name"),
                    "{{span_name}}",
                )
            ],
            description="p95 span duration (milliseconds: the connector's unit). Orange and red "
            "at the response-time thresholds ({SlowResponseTime:ms} ms, {HighResponseTime:ms} ms).",
            min_value=0,
            span=8,
            thresholds=(
                (None, "green"),
                AlertStep("SlowResponseTime", "orange", scale=1000),
                AlertStep("HighResponseTime", "red", scale=1000),
            ),
        ),
    ),
    row(
        "Database and cache",
        TimeSeries(
            "Database query P95",
            "s",
            [
                (
                    quantile(0.95, "tdd_database_query_duration_seconds", by="operation"),
                    "{{operation}}",
                )
            ],
            description="p95 query time per operation. Orange over 100 ms (a fifth of the 0.5 s "
            "response-time budget in one query), red over 500 ms (all of it).",
            min_value=0,
            span=8,
            thresholds=(
                (None, "green"),
                (DB_QUERY_WARNING_S, "orange"),
                (DB_QUERY_CRITICAL_S, "red"),
            ),
            exemplars=True,
        ),
        TimeSeries(
            "Database connections",
            "short",
            [
                (f"sum by (instance) ({sel('tdd_active_connections')})", "active {{instance}}"),
                (
                    f"sum by (database) (rate({sel('tdd_database_connections_failed_total')}"
                    "[$__rate_interval])) * 60",
                    "failed/min {{database}}",
                ),
            ],
            description="Open connections per instance, and failed connection attempts per "
            "minute (DatabaseConnectionFailure).",
            span=8,
            no_thresholds="it mixes open connections (a count: any level the pool allows is fine) "
            "with failed connections per minute, on which DatabaseConnectionFailure alerts.",
        ),
        TimeSeries(
            "Cache hit ratio",
            "percentunit",
            [(f"avg by (cache) ({sel('tdd_cache_hit_ratio')})", "{{cache}}")],
            description="Hits / lookups per cache (the example app: its epic lookup cache). Red "
            "below 50 %, green from 80 %.",
            thresholds=((None, "red"), (0.5, "orange"), (0.8, "green")),
            min_value=0,
            max_value=1,
            span=8,
        ),
        TimeSeries(
            "Sync duration P50 / P95",
            "s",
            [
                (quantile(0.5, "tdd_sync_duration_seconds"), "p50"),
                (quantile(0.95, "tdd_sync_duration_seconds"), "p95"),
            ],
            description="Bidirectional sync duration (the example app: epics and tasks with a "
            "JSON file, every 5 s). Orange over 1 s, red over 5 s: longer than the interval.",
            min_value=0,
            thresholds=((None, "green"), (SYNC_WARNING_S, "orange"), (SYNC_CRITICAL_S, "red")),
        ),
        TimeSeries(
            "Database up",
            "none",
            [(f"min by (database) ({sel('tdd_database_up')})", "{{database}}")],
            description="tdd_database_up per database, worst instance: 1 up, 0 down "
            "(DatabaseDown).",
            thresholds=((None, "red"), (1, "green")),
            min_value=0,
            max_value=1,
        ),
    ),
    row(
        "Resources",
        TimeSeries(
            "App memory",
            "bytes",
            [(f"sum by (instance) ({sel('tdd_memory_usage_bytes')})", "{{instance}}")],
            description="tdd_memory_usage_bytes per instance; HighMemoryUsage above "
            "{HighMemoryUsage:GiB} GiB.",
            thresholds=((None, "green"), AlertStep("HighMemoryUsage", "orange")),
            min_value=0,
        ),
        TimeSeries(
            "App CPU",
            "percentunit",
            [(f"sum by (instance) ({sel('tdd_cpu_usage_ratio')})", "{{instance}}")],
            description="tdd_cpu_usage_ratio per instance (1 = one core). Orange from 80 %, red "
            "from 95 %: a Python process rarely gets more than one core (the GIL).",
            min_value=0,
            thresholds=CPU_THRESHOLDS,
        ),
        TimeSeries(
            "Host CPU (node-exporter)",
            "percentunit",
            [
                (
                    '1 - avg by (instance) (rate(node_cpu_seconds_total{job="node-exporter", '
                    'mode="idle"}[$__rate_interval]))',
                    "{{instance}}",
                )
            ],
            description="Busy share of the host's CPUs. Orange from 80 %, red from 95 %.",
            min_value=0,
            max_value=1,
            span=8,
            thresholds=CPU_THRESHOLDS,
        ),
        TimeSeries(
            "Host memory available (node-exporter)",
            "bytes",
            [
                (
                    'node_memory_MemAvailable_bytes{job="node-exporter"}',
                    "{{instance}}",
                )
            ],
            description="Memory the host can still give to processes. Orange under 1 GiB, red "
            "under 256 MiB.",
            min_value=0,
            span=8,
            thresholds=(
                (None, "red"),
                (HOST_MEMORY_CRITICAL_BYTES, "orange"),
                (HOST_MEMORY_WARNING_BYTES, "green"),
            ),
        ),
        TimeSeries(
            "Host disk I/O (node-exporter)",
            "percentunit",
            [
                (
                    'rate(node_disk_io_time_seconds_total{job="node-exporter"}[$__rate_interval])',
                    "{{instance}} {{device}}",
                )
            ],
            description="Share of time each disk was busy. Orange from 80 %, red from 95 %: "
            "I/O queues.",
            min_value=0,
            span=8,
            thresholds=CPU_THRESHOLDS,
        ),
    ),
)

PERFORMANCE = Dashboard(
    "otel-tdd-performance",
    "TDD Framework - Performance",
    "Response time percentiles, database and cache performance, resource use.",
    ["performance"],
    rows=ROWS,
)
