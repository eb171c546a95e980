"""TDD Framework - Application Overview: is the app up, busy, fast, failing?"""

from __future__ import annotations

from .levels import ANY_PER_S, HEALTH_MAPPINGS, HEALTH_THRESHOLDS, LATENCY_THRESHOLDS, VOLUME
from .model import AlertStep, Dashboard, Logs, Stat, TimeSeries, row
from .promql import ERROR_LOGS, otelcol_accepted, otelcol_per_signal, quantile, sel

ROWS = (
    row(
        "Now",
        Stat(
            "Active users",
            "short",
            f"sum({sel('tdd_active_users')})",
            description="tdd_active_users summed over the selected instances.",
            no_thresholds=VOLUME,
        ),
        Stat(
            "Concurrent users",
            "short",
            f"sum({sel('tdd_concurrent_users')})",
            description="tdd_concurrent_users: sessions open right now.",
            no_thresholds=VOLUME,
        ),
        Stat(
            "Response time P95",
            "s",
            'max(job:tdd_response_time_seconds:p95_5m{job=~"$service"})',
            description="Worst service p95 over 5m (recording rule). Orange: SlowResponseTime "
            "threshold; red: HighResponseTime.",
            thresholds=LATENCY_THRESHOLDS,
        ),
        Stat(
            "Firing alerts",
            "short",
            'count(ALERTS{alertstate="firing", service=~"$service"}) or vector(0)',
            description="Alerts firing in Prometheus for the selected services.",
            thresholds=((None, "green"), (1, "red")),
        ),
    ),
    row(
        "Traffic, latency, errors",
        TimeSeries(
            "Request rate",
            "reqps",
            [
                (
                    f"sum by (job) (rate({sel('tdd_response_time_seconds_count')}"
                    "[$__rate_interval]))",
                    "{{job}}",
                )
            ],
            description="Requests per second per service (tdd_response_time_seconds_count).",
            no_thresholds=VOLUME,
        ),
        TimeSeries(
            "Response time P95",
            "s",
            [(quantile(0.95, "tdd_response_time_seconds", by="job", window="5m"), "{{job}}")],
            description="p95 over 5m per service, the value HighResponseTime and "
            "SlowResponseTime alert on (the recording rule's expression, over the buckets so "
            "that their exemplars show: each dot a request's trace, open it in Jaeger).",
            thresholds=LATENCY_THRESHOLDS,
            min_value=0,
            exemplars=True,
        ),
        TimeSeries(
            "Errors by type",
            "ops",
            [
                (
                    f"sum by (job, type) (rate({sel('tdd_errors_total')}[$__rate_interval]))",
                    "{{job}} {{type}}",
                )
            ],
            description="tdd_errors_total per second. HighErrorRate fires above "
            "{HighErrorRate}/s per service.",
            thresholds=((None, "green"), AlertStep("HighErrorRate", "red")),
            stacked=True,
        ),
        TimeSeries(
            "Epic creation rate",
            "opm",
            [
                (
                    f"sum by (project_type) (rate({sel('tdd_epics_created_total')}"
                    "[$__rate_interval])) * 60",
                    "{{project_type}}",
                )
            ],
            description="Epics created per minute by project type. (The seed's "
            "tdd_epic_creations_total is tdd_epics_created_total, without a user_id label.)",
            no_thresholds=VOLUME,
        ),
    ),
    row(
        "Error logs",
        Logs(
            "Error logs",
            ERROR_LOGS,
            description="ERROR and FATAL records of every service, newest first, from "
            "VictoriaLogs (severity_number >= 17). Open a record: its trace_id opens the trace "
            "in Jaeger. Not filtered by the Service variable (a Prometheus job name, not a "
            'LogsQL filter): add "service.name":<name> to the query for one service.',
        ),
    ),
    row(
        "Health and telemetry pipeline",
        Stat(
            "Health checks",
            "none",
            f"min by (check) ({sel('tdd_health_check_status')})",
            legend="{{check}}",
            description="tdd_health_check_status per check, worst instance: 1 healthy, "
            "0.5 warning, 0 critical (HealthCheckFailing).",
            thresholds=HEALTH_THRESHOLDS,
            mappings=HEALTH_MAPPINGS,
            span=8,
            height=8,
        ),
        TimeSeries(
            "Scrape targets up",
            "none",
            [("min by (job) (up)", "{{job}}")],
            description="Prometheus scrape jobs (docs/stack.md): 1 up, 0 down. "
            "ScrapeTargetDown fires after 1m at 0.",
            thresholds=((None, "red"), (1, "green")),
            min_value=0,
            max_value=1,
            span=8,
        ),
        TimeSeries(
            "Telemetry dropped in the app",
            "ops",
            [
                (
                    f"sum by (signal) (rate({sel('tdd_telemetry_dropped_total')}"
                    "[$__rate_interval]))",
                    "dropped {{signal}}",
                ),
                (
                    f"sum(rate({sel('tdd_log_records_suppressed_total')}[$__rate_interval]))",
                    "log records suppressed (sampling, rate limit)",
                ),
            ],
            description="Items the app's SDK dropped before export (TelemetryDropped), and "
            "log records deliberately suppressed by sampling and rate limiting. Orange: any.",
            span=8,
            thresholds=((None, "green"), (ANY_PER_S, "orange")),
        ),
        TimeSeries(
            "Collector: accepted vs refused",
            "ops",
            [
                (
                    otelcol_accepted("receiver", "spans"),
                    "accepted spans {{receiver}}",
                ),
                (
                    otelcol_accepted("receiver", "metric_points"),
                    "accepted metric points {{receiver}}",
                ),
                (
                    otelcol_accepted("receiver", "log_records"),
                    "accepted log records {{receiver}}",
                ),
                (
                    otelcol_per_signal("receiver", "otelcol_receiver_refused_{signal}"),
                    "refused {{receiver}}",
                ),
            ],
            description="What the Collector's receivers accept and refuse (its self-metrics, "
            "job otel-collector-internal). CollectorRefusingData fires on sustained refusals.",
            span=12,
            no_thresholds="accepted items are a volume; refusals, the other series, are what "
            "CollectorRefusingData alerts on after 5m.",
        ),
        TimeSeries(
            "Collector: failed and dropped",
            "ops",
            [
                (
                    otelcol_per_signal("exporter", "otelcol_exporter_send_failed_{signal}"),
                    "send failed {{exporter}}",
                ),
                (
                    otelcol_per_signal("exporter", "otelcol_exporter_enqueue_failed_{signal}"),
                    "queue full {{exporter}}",
                ),
            ],
            description="Items exporters gave up on (CollectorExporterFailing) or could not "
            "queue (CollectorDroppingData). Red: any (the data is lost).",
            span=12,
            thresholds=((None, "green"), (ANY_PER_S, "red")),
        ),
    ),
)

OVERVIEW = Dashboard(
    "otel-tdd-overview",
    "TDD Framework - Application Overview",
    "Traffic, latency, errors and the health of the telemetry pipeline.",
    ["overview"],
    rows=ROWS,
)
