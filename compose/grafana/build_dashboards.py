"""Generate the otel-tdd Grafana dashboards (compose/grafana/dashboards/*.json).

The JSON files are committed, provisioned into Grafana as they are, and
produced only by this script, with grafana-foundation-sdk (a dev dependency,
pinned to its Grafana 11.6 build). Edit the panels here, then regenerate:

    python compose/grafana/build_dashboards.py            # rewrite the JSON files
    python compose/grafana/build_dashboards.py --check    # exit 1 if they are stale
    python compose/grafana/build_dashboards.py --list-queries [--var NAME=VALUE ...]

`--list-queries` (and `panel_queries()` when imported) reads the committed
JSON, not the SDK, so a test can run every panel's PromQL against a live
Prometheus without the SDK installed: Grafana variables ($service,
$instance, $__rate_interval, $__range, ...) are replaced by
DEFAULT_SUBSTITUTIONS unless overridden. docs/dashboards.md describes the
dashboards.

Conventions the tests check (tests/unit/test_dashboards.py): every panel has
at least one Prometheus query with a refId and a unit; every stat and time
series has thresholds beyond the base colour, or says in its description why
not ("No threshold: <reason>", NO_THRESHOLD; the builder refuses a panel with
neither); every datasource is the provisioned uid "prometheus"; app queries
filter on job=~"$service" (the OTel service.name) and instance=~"$instance".
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve().parent
DASHBOARDS_DIR = HERE / "dashboards"

#: Provisioned datasource uid (provisioning/datasources/prometheus.yml).
DATASOURCE_UID = "prometheus"

#: Values for Grafana's variables when a query is run outside Grafana:
#: "all services and instances", and ranges long enough to hold several
#: samples at the stack's 5s scrape interval.
DEFAULT_SUBSTITUTIONS: dict[str, str] = {
    "service": ".*",
    "instance": ".*",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
}

# Grafana's variable syntaxes: $name, ${name}, ${name:format}, [[name]].
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")

# The label filter every app query carries.
_APP = 'job=~"$service", instance=~"$instance"'
FAILURE = 'result="failure"'
SPAN_ERROR = 'status_code="STATUS_CODE_ERROR"'

# Thresholds shared with the alert rules (compose/prometheus/rules): the
# dashboards colour what the alerts fire on.
P95_WARNING_S = 0.5  # SlowResponseTime
P95_CRITICAL_S = 1.0  # HighResponseTime
MEMORY_WARNING_BYTES = 2 * 1024**3  # HighMemoryUsage
ERRORS_CRITICAL_PER_S = 0.1  # HighErrorRate
AUTH_FAILURES_WARNING_PER_S = 0.2  # AuthFailureSpike
# "Any at all" for events that should not happen: one event in a 16-minute rate window
# is above it (0 is not: Grafana colours a value with the highest step <= it).
ANY_PER_S = 0.001

# Thresholds of our own (no alert fires on these; docs/dashboards.md gives the reasons).
DB_QUERY_WARNING_S = 0.1  # a fifth of the 0.5 s response-time budget in one query
DB_QUERY_CRITICAL_S = 0.5  # one query alone spends the whole budget
SYNC_WARNING_S = 1.0
SYNC_CRITICAL_S = 5.0  # the example app syncs every 5 s: a longer sync falls behind
CPU_WARNING = 0.8  # share of a core (process) or of all cores (host)
CPU_CRITICAL = 0.95
HOST_MEMORY_CRITICAL_BYTES = 256 * 1024**2
HOST_MEMORY_WARNING_BYTES = 1024**3
FOCUS_SHORT_S = 600  # focus broken off within 10 minutes
FOCUS_LONG_S = 7200  # over 2 hours: most likely a timer left running
PRODUCTIVITY_LOW = 1.0  # tasks completed per focus hour

#: How a panel without thresholds says why, at the end of its description.
NO_THRESHOLD = "No threshold: "
#: The reason for panels that show how much happens (traffic, users, business volume).
VOLUME = (
    "a volume: what is normal depends on the team and the hour, so it is read against "
    "its own history; the error, latency and drop panels carry the thresholds."
)


def sel(metric: str, extra: str = "") -> str:
    """`metric{job=~"$service", instance=~"$instance"[, extra]}`."""
    labels = f"{_APP}, {extra}" if extra else _APP
    return f"{metric}{{{labels}}}"


def quantile(q: float, histogram: str, by: str = "", extra: str = "") -> str:
    """A quantile of a histogram: the per-bucket rate, summed by `le`.

    The seed wrote histogram_quantile(0.95, metric): Prometheus cannot take a
    quantile of a bare histogram name; it needs the rate of each bucket.
    """
    keep = f"{by}, le" if by else "le"
    buckets = sel(f"{histogram}_bucket", extra)
    return f"histogram_quantile({q}, sum by ({keep}) (rate({buckets}[$__rate_interval])))"


def otelcol_per_signal(by: str, name: str) -> str:
    """`sum by (<by>)` of a Collector counter over its three signals, e.g.
    name="otelcol_receiver_refused_{signal}".

    rate({__name__=~"..._(spans|metric_points|log_records)"}) drops the name, so a
    receiver's three series collide ("vector cannot contain metrics with the same
    labelset"); a signal label keeps them apart, as the pipeline alert rules do.
    """
    parts = [
        f'label_replace(rate({{__name__=~"{name.format(signal=items)}(_total)?"}}'
        f'[$__rate_interval]), "signal", "{signal}", "", "")'
        for signal, items in (
            ("traces", "spans"),
            ("metrics", "metric_points"),
            ("logs", "log_records"),
        )
    ]
    return f"sum by ({by}) ({' or '.join(parts)})"


# --------------------------------------------------------------------------
# Building (needs grafana-foundation-sdk)
# --------------------------------------------------------------------------


def _sdk() -> SimpleNamespace:
    """Import the SDK lazily: panel_queries() must work without it."""
    try:
        from grafana_foundation_sdk.builders import common as common_b
        from grafana_foundation_sdk.builders import dashboard as dashboard_b
        from grafana_foundation_sdk.builders import prometheus, stat, timeseries
        from grafana_foundation_sdk.cog.encoder import JSONEncoder
        from grafana_foundation_sdk.models import common as common_m
        from grafana_foundation_sdk.models import dashboard as dashboard_m
    except ImportError as exc:
        raise SystemExit(
            "build_dashboards.py needs grafana-foundation-sdk: "
            "pip install 'grafana-foundation-sdk==1769699379!11.6.0' "
            "(or pip install -e '.[dev]')"
        ) from exc
    return SimpleNamespace(
        common_b=common_b,
        dashboard_b=dashboard_b,
        prometheus=prometheus,
        stat=stat,
        timeseries=timeseries,
        JSONEncoder=JSONEncoder,
        common_m=common_m,
        dashboard_m=dashboard_m,
    )


class _Builder:
    """Small helpers over the SDK so each dashboard reads as a list of panels."""

    def __init__(self, sdk: SimpleNamespace) -> None:
        self.sdk = sdk
        self.ds = sdk.dashboard_m.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
        self._next_id = 1

    def _id(self) -> int:
        panel_id = self._next_id
        self._next_id += 1
        return panel_id

    def _targets(self, panel: Any, queries: Sequence[tuple[str, str]]) -> Any:
        for index, (expr, legend) in enumerate(queries):
            target = (
                self.sdk.prometheus.Dataquery()
                .expr(expr)
                .ref_id(chr(ord("A") + index))
                .datasource(self.ds)
            )
            if legend:
                target = target.legend_format(legend)
            panel = panel.with_target(target)
        return panel

    def thresholds(self, *steps: tuple[float | None, str]) -> Any:
        m = self.sdk.dashboard_m
        return (
            self.sdk.dashboard_b.ThresholdsConfig()
            .mode(m.ThresholdsMode.ABSOLUTE)
            .steps([m.Threshold(value=value, color=color) for value, color in steps])
        )

    @staticmethod
    def _why_no_thresholds(
        title: str,
        description: str,
        thresholds: Sequence[tuple[float | None, str]],
        no_thresholds: str,
    ) -> str:
        """The description; without thresholds beyond the base, it ends with the reason."""
        if len(thresholds) > 1 and not no_thresholds:
            return description
        if len(thresholds) <= 1 and no_thresholds:
            return f"{description} {NO_THRESHOLD}{no_thresholds}"
        raise ValueError(
            f"panel {title!r}: give thresholds beyond the base colour, or no_thresholds= "
            "with the reason there are none (not both)"
        )

    def row(self, title: str) -> Any:
        return self.sdk.dashboard_b.Row(title).id(self._id())

    def timeseries(
        self,
        title: str,
        unit: str,
        queries: Sequence[tuple[str, str]],
        *,
        description: str,
        thresholds: Sequence[tuple[float | None, str]] = (),
        no_thresholds: str = "",
        min_value: float | None = None,
        max_value: float | None = None,
        stacked: bool = False,
        span: int = 12,
        height: int = 8,
    ) -> Any:
        sdk = self.sdk
        description = self._why_no_thresholds(title, description, thresholds, no_thresholds)
        panel = (
            sdk.timeseries.Panel()
            .id(self._id())
            .title(title)
            .description(description)
            .datasource(self.ds)
            .unit(unit)
            .span(span)
            .height(height)
            .fill_opacity(10)
            .legend(
                sdk.common_b.VizLegendOptions()
                .display_mode(sdk.common_m.LegendDisplayMode.LIST)
                .placement(sdk.common_m.LegendPlacement.BOTTOM)
                .show_legend(True)
            )
        )
        if thresholds:
            panel = panel.thresholds(self.thresholds(*thresholds)).thresholds_style(
                sdk.common_b.GraphThresholdsStyleConfig().mode(
                    sdk.common_m.GraphThresholdsStyleMode.DASHED
                )
            )
        if min_value is not None:
            panel = panel.min(min_value)
        if max_value is not None:
            panel = panel.max(max_value)
        if stacked:
            panel = panel.stacking(
                sdk.common_b.StackingConfig().mode(sdk.common_m.StackingMode.NORMAL)
            )
        return self._targets(panel, queries)

    def stat(
        self,
        title: str,
        unit: str,
        query: str,
        *,
        description: str,
        thresholds: Sequence[tuple[float | None, str]] = (),
        no_thresholds: str = "",
        mappings: Mapping[str, tuple[str, str]] | None = None,
        legend: str = "",
        span: int = 6,
        height: int = 4,
    ) -> Any:
        sdk = self.sdk
        description = self._why_no_thresholds(title, description, thresholds, no_thresholds)
        panel = (
            sdk.stat.Panel()
            .id(self._id())
            .title(title)
            .description(description)
            .datasource(self.ds)
            .unit(unit)
            .span(span)
            .height(height)
            .graph_mode(sdk.common_m.BigValueGraphMode.AREA)
            .color_mode(sdk.common_m.BigValueColorMode.VALUE)
            .reduce_options(sdk.common_b.ReduceDataOptions().calcs(["lastNotNull"]))
            .thresholds(self.thresholds(*(thresholds or ((None, "green"),))))
        )
        if mappings:
            m = sdk.dashboard_m
            panel = panel.mappings(
                [
                    m.ValueMap(
                        options={
                            value: m.ValueMappingResult(text=text, color=color, index=index)
                            for index, (value, (text, color)) in enumerate(mappings.items())
                        }
                    )
                ]
            )
        return self._targets(panel, [(query, legend)])

    def dashboard(self, uid: str, title: str, description: str, tags: Iterable[str]) -> Any:
        sdk = self.sdk
        m = sdk.dashboard_m
        service = (
            sdk.dashboard_b.QueryVariable("service")
            .label("Service")
            .description("The app's OTel service.name: the `job` label of its metrics.")
            .datasource(self.ds)
            # Any tdd_* series: every instrumented service has some.
            .query('label_values({__name__=~"tdd_.+"}, job)')
            .refresh(m.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(m.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            # "All" as one regex instead of a long alternation of every value.
            .all_value(".*")
        )
        instance = (
            sdk.dashboard_b.QueryVariable("instance")
            .label("Instance")
            .description("service.instance.id: one process of the service.")
            .datasource(self.ds)
            .query('label_values({__name__=~"tdd_.+", job=~"$service"}, instance)')
            .refresh(m.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(m.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
        return (
            sdk.dashboard_b.Dashboard(title)
            .uid(uid)
            .description(description)
            .tags(["otel-tdd", *tags])
            .editable()
            .time("now-1h", "now")
            .refresh("30s")
            .timezone("browser")
            .tooltip(m.DashboardCursorSync.CROSSHAIR)
            .with_variable(service)
            .with_variable(instance)
            .link(
                sdk.dashboard_b.DashboardLink("otel-tdd dashboards")
                .type(m.DashboardLinkType.DASHBOARDS)
                .tags(["otel-tdd"])
                .as_dropdown(True)
                .include_vars(True)
                .keep_time(True)
            )
        )


LATENCY_THRESHOLDS = ((None, "green"), (P95_WARNING_S, "orange"), (P95_CRITICAL_S, "red"))
HEALTH_MAPPINGS = {
    "1": ("healthy", "green"),
    "0.5": ("warning", "orange"),
    "0": ("critical", "red"),
}
HEALTH_THRESHOLDS = ((None, "red"), (0.5, "orange"), (1, "green"))
# Business counts in the range: none at all is orange (nobody working, or nothing reported).
IDLE_THRESHOLDS = ((None, "orange"), (1, "green"))
PRODUCTIVITY_THRESHOLDS = ((None, "orange"), (PRODUCTIVITY_LOW, "green"))


def overview(b: _Builder) -> Any:
    """TDD Framework - Application Overview: is the app up, busy, fast, failing?"""
    d = b.dashboard(
        "otel-tdd-overview",
        "TDD Framework - Application Overview",
        "Traffic, latency, errors and the health of the telemetry pipeline.",
        ["overview"],
    )
    d = d.with_row(b.row("Now"))
    d = d.with_panel(
        b.stat(
            "Active users",
            "short",
            f"sum({sel('tdd_active_users')})",
            description="tdd_active_users summed over the selected instances.",
            no_thresholds=VOLUME,
        )
    )
    d = d.with_panel(
        b.stat(
            "Concurrent users",
            "short",
            f"sum({sel('tdd_concurrent_users')})",
            description="tdd_concurrent_users: sessions open right now.",
            no_thresholds=VOLUME,
        )
    )
    d = d.with_panel(
        b.stat(
            "Response time P95",
            "s",
            'max(job:tdd_response_time_seconds:p95_5m{job=~"$service"})',
            description="Worst service p95 over 5m (recording rule). Orange: SlowResponseTime "
            "threshold; red: HighResponseTime.",
            thresholds=LATENCY_THRESHOLDS,
        )
    )
    d = d.with_panel(
        b.stat(
            "Firing alerts",
            "short",
            'count(ALERTS{alertstate="firing", service=~"$service"}) or vector(0)',
            description="Alerts firing in Prometheus for the selected services.",
            thresholds=((None, "green"), (1, "red")),
        )
    )
    d = d.with_row(b.row("Traffic, latency, errors"))
    d = d.with_panel(
        b.timeseries(
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
        )
    )
    d = d.with_panel(
        b.timeseries(
            "Response time P95",
            "s",
            [('job:tdd_response_time_seconds:p95_5m{job=~"$service"}', "{{job}}")],
            description="p95 over 5m per service, the value HighResponseTime and "
            "SlowResponseTime alert on.",
            thresholds=LATENCY_THRESHOLDS,
            min_value=0,
        )
    )
    d = d.with_panel(
        b.timeseries(
            "Errors by type",
            "ops",
            [
                (
                    f"sum by (job, type) (rate({sel('tdd_errors_total')}[$__rate_interval]))",
                    "{{job}} {{type}}",
                )
            ],
            description="tdd_errors_total per second. HighErrorRate fires above 0.1/s per service.",
            thresholds=((None, "green"), (ERRORS_CRITICAL_PER_S, "red")),
            stacked=True,
        )
    )
    d = d.with_panel(
        b.timeseries(
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
        )
    )
    d = d.with_row(b.row("Health and telemetry pipeline"))
    d = d.with_panel(
        b.stat(
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
        )
    )
    d = d.with_panel(
        b.timeseries(
            "Scrape targets up",
            "none",
            [("min by (job) (up)", "{{job}}")],
            description="Prometheus scrape jobs (docs/stack.md): 1 up, 0 down. "
            "ScrapeTargetDown fires after 1m at 0.",
            thresholds=((None, "red"), (1, "green")),
            min_value=0,
            max_value=1,
            span=8,
        )
    )
    d = d.with_panel(
        b.timeseries(
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
        )
    )
    d = d.with_panel(
        b.timeseries(
            "Collector: accepted vs refused",
            "ops",
            [
                (
                    'sum by (receiver) (rate({__name__=~"otelcol_receiver_accepted_spans(_total)?"}'
                    "[$__rate_interval]))",
                    "accepted spans {{receiver}}",
                ),
                (
                    'sum by (receiver) (rate({__name__=~"otelcol_receiver_accepted_metric_points'
                    '(_total)?"}[$__rate_interval]))',
                    "accepted metric points {{receiver}}",
                ),
                (
                    'sum by (receiver) (rate({__name__=~"otelcol_receiver_accepted_log_records'
                    '(_total)?"}[$__rate_interval]))',
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
        )
    )
    d = d.with_panel(
        b.timeseries(
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
        )
    )
    return d


def performance(b: _Builder) -> Any:
    """TDD Framework - Performance: latency percentiles, database, cache, resources."""
    d = b.dashboard(
        "otel-tdd-performance",
        "TDD Framework - Performance",
        "Response time percentiles, database and cache performance, resource use.",
        ["performance"],
    )
    d = d.with_row(b.row("Response time"))
    d = d.with_panel(
        b.timeseries(
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
        )
    )
    d = d.with_panel(
        b.timeseries(
            "Response time P95 by endpoint",
            "s",
            [(quantile(0.95, "tdd_response_time_seconds", by="endpoint"), "{{endpoint}}")],
            description="p95 per endpoint over the selected instances, from the raw buckets.",
            thresholds=LATENCY_THRESHOLDS,
            min_value=0,
        )
    )
    d = d.with_panel(
        b.timeseries(
            "Response time P95 by instance",
            "s",
            [(quantile(0.95, "tdd_response_time_seconds", by="instance"), "{{instance}}")],
            description="p95 per instance: one slow process among healthy ones.",
            thresholds=LATENCY_THRESHOLDS,
            min_value=0,
        )
    )
    d = d.with_panel(
        b.timeseries(
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
        )
    )
    d = d.with_panel(
        b.timeseries(
            "Tracked operations P95",
            "s",
            [(quantile(0.95, "tdd_operation_duration_seconds", by="operation"), "{{operation}}")],
            description="p95 of functions decorated with @performance_tracked. Orange and red "
            "at the response-time thresholds (0.5 s, 1 s): an operation that slow makes its "
            "request slow.",
            min_value=0,
            thresholds=LATENCY_THRESHOLDS,
        )
    )
    d = d.with_panel(
        b.timeseries(
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
        )
    )
    d = d.with_row(b.row("Spans (span_metrics connector in the Collector)"))
    d = d.with_panel(
        b.timeseries(
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
        )
    )
    d = d.with_panel(
        b.timeseries(
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
        )
    )
    d = d.with_panel(
        b.timeseries(
            "Span duration P95 by span name",
            "ms",
            [
                (
                    quantile(0.95, "traces_span_metrics_duration_milliseconds", by="span_name"),
                    "{{span_name}}",
                )
            ],
            description="p95 span duration (milliseconds: the connector's unit). Orange and red "
            "at the response-time thresholds (500 ms, 1000 ms).",
            min_value=0,
            span=8,
            thresholds=(
                (None, "green"),
                (P95_WARNING_S * 1000, "orange"),
                (P95_CRITICAL_S * 1000, "red"),
            ),
        )
    )
    d = d.with_row(b.row("Database and cache"))
    d = d.with_panel(
        b.timeseries(
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
        )
    )
    d = d.with_panel(
        b.timeseries(
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
        )
    )
    d = d.with_panel(
        b.timeseries(
            "Cache hit ratio",
            "percentunit",
            [(f"avg by (cache) ({sel('tdd_cache_hit_ratio')})", "{{cache}}")],
            description="Hits / lookups per cache (the example app: its epic lookup cache). Red "
            "below 50 %, green from 80 %.",
            thresholds=((None, "red"), (0.5, "orange"), (0.8, "green")),
            min_value=0,
            max_value=1,
            span=8,
        )
    )
    d = d.with_panel(
        b.timeseries(
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
        )
    )
    d = d.with_panel(
        b.timeseries(
            "Database up",
            "none",
            [(f"min by (database) ({sel('tdd_database_up')})", "{{database}}")],
            description="tdd_database_up per database, worst instance: 1 up, 0 down "
            "(DatabaseDown).",
            thresholds=((None, "red"), (1, "green")),
            min_value=0,
            max_value=1,
        )
    )
    d = d.with_row(b.row("Resources"))
    d = d.with_panel(
        b.timeseries(
            "App memory",
            "bytes",
            [(f"sum by (instance) ({sel('tdd_memory_usage_bytes')})", "{{instance}}")],
            description="tdd_memory_usage_bytes per instance; HighMemoryUsage above 2 GiB.",
            thresholds=((None, "green"), (MEMORY_WARNING_BYTES, "orange")),
            min_value=0,
        )
    )
    d = d.with_panel(
        b.timeseries(
            "App CPU",
            "percentunit",
            [(f"sum by (instance) ({sel('tdd_cpu_usage_ratio')})", "{{instance}}")],
            description="tdd_cpu_usage_ratio per instance (1 = one core). Orange from 80 %, red "
            "from 95 %: a Python process rarely gets more than one core (the GIL).",
            min_value=0,
            thresholds=((None, "green"), (CPU_WARNING, "orange"), (CPU_CRITICAL, "red")),
        )
    )
    d = d.with_panel(
        b.timeseries(
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
            thresholds=((None, "green"), (CPU_WARNING, "orange"), (CPU_CRITICAL, "red")),
        )
    )
    d = d.with_panel(
        b.timeseries(
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
        )
    )
    d = d.with_panel(
        b.timeseries(
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
            thresholds=((None, "green"), (CPU_WARNING, "orange"), (CPU_CRITICAL, "red")),
        )
    )
    return d


def business(b: _Builder) -> Any:
    """TDD Framework - Business: epics, tasks, focus sessions, productivity."""
    d = b.dashboard(
        "otel-tdd-business",
        "TDD Framework - Business",
        "Epics, tasks, focus sessions and productivity. No per-user series: user_id is "
        "never a metric label (cardinality); per-user questions go to logs and traces.",
        ["business"],
    )
    d = d.with_row(b.row("In the selected time range"))
    d = d.with_panel(
        b.stat(
            "Epics created",
            "short",
            f"sum(increase({sel('tdd_epics_created_total')}[$__range]))",
            description="Epics created during the dashboard's time range. Orange: none (nobody "
            "working, or the app not reporting).",
            thresholds=IDLE_THRESHOLDS,
        )
    )
    d = d.with_panel(
        b.stat(
            "Tasks completed",
            "short",
            f"sum(increase({sel('tdd_tasks_completed_total')}[$__range]))",
            description="Tasks completed during the dashboard's time range. Orange: none (nobody "
            "working, or the app not reporting).",
            thresholds=IDLE_THRESHOLDS,
        )
    )
    d = d.with_panel(
        b.stat(
            "Focus sessions",
            "short",
            f"sum(increase({sel('tdd_focus_sessions_total')}[$__range]))",
            description="Focus sessions started during the dashboard's time range. Orange: "
            "none (nobody working, or the app not reporting).",
            thresholds=IDLE_THRESHOLDS,
        )
    )
    d = d.with_panel(
        b.stat(
            "Productivity score",
            "none",
            f"avg({sel('tdd_user_productivity_score')})",
            description="tdd_user_productivity_score averaged over instances (an aggregate "
            "gauge: no user_id label): tasks completed per focus hour. Orange below 1.",
            thresholds=PRODUCTIVITY_THRESHOLDS,
        )
    )
    d = d.with_row(b.row("Rates"))
    d = d.with_panel(
        b.timeseries(
            "Epics created per minute",
            "opm",
            [
                (
                    f"sum by (project_type) (rate({sel('tdd_epics_created_total')}"
                    "[$__rate_interval])) * 60",
                    "{{project_type}}",
                )
            ],
            description="By project type.",
            stacked=True,
            no_thresholds=VOLUME,
        )
    )
    d = d.with_panel(
        b.timeseries(
            "Tasks completed per minute",
            "opm",
            [
                (
                    f"sum by (project_type) (rate({sel('tdd_tasks_completed_total')}"
                    "[$__rate_interval])) * 60",
                    "{{project_type}}",
                )
            ],
            description="By project type.",
            stacked=True,
            no_thresholds=VOLUME,
        )
    )
    d = d.with_row(b.row("Focus and engagement"))
    d = d.with_panel(
        b.timeseries(
            "Focus session duration",
            "s",
            [
                (quantile(0.5, "tdd_focus_session_duration_seconds"), "p50"),
                (quantile(0.95, "tdd_focus_session_duration_seconds"), "p95"),
                (
                    f"sum(rate({sel('tdd_focus_session_duration_seconds_sum')}"
                    "[$__rate_interval])) / "
                    f"sum(rate({sel('tdd_focus_session_duration_seconds_count')}"
                    "[$__rate_interval]))",
                    "mean",
                ),
            ],
            description="How long focus sessions last. Orange under 10 minutes (focus broken "
            "off) and over 2 hours (most likely a timer left running).",
            min_value=0,
            span=8,
            thresholds=((None, "orange"), (FOCUS_SHORT_S, "green"), (FOCUS_LONG_S, "orange")),
        )
    )
    d = d.with_panel(
        b.timeseries(
            "Productivity score",
            "none",
            [(f"avg by (job) ({sel('tdd_user_productivity_score')})", "{{job}}")],
            description="Average productivity score per service (tasks completed per focus "
            "hour). Orange below 1.",
            span=8,
            thresholds=PRODUCTIVITY_THRESHOLDS,
        )
    )
    d = d.with_panel(
        b.timeseries(
            "Active and concurrent users",
            "short",
            [
                (f"sum({sel('tdd_active_users')})", "active"),
                (f"sum({sel('tdd_concurrent_users')})", "concurrent"),
            ],
            description="Users active recently and sessions open now.",
            min_value=0,
            span=8,
            no_thresholds=VOLUME,
        )
    )
    return d


def security(b: _Builder) -> Any:
    """TDD Framework - Security: authentication, CSRF, rate limiting, security events."""
    d = b.dashboard(
        "otel-tdd-security",
        "TDD Framework - Security",
        "Authentication failures, CSRF violations, rate-limit hits and security events.",
        ["security"],
    )
    d = d.with_row(b.row("In the selected time range"))
    d = d.with_panel(
        b.stat(
            "Failed logins",
            "short",
            f"sum(increase({sel('tdd_auth_attempts_total', FAILURE)}[$__range]))",
            description="Failed authentication attempts during the time range.",
            thresholds=((None, "green"), (100, "orange")),
        )
    )
    d = d.with_panel(
        b.stat(
            "Login failure ratio",
            "percentunit",
            f"sum(rate({sel('tdd_auth_attempts_total', FAILURE)}[$__range])) / "
            f"sum(rate({sel('tdd_auth_attempts_total')}[$__range]))",
            description="Failed / all authentication attempts during the time range.",
            thresholds=((None, "green"), (0.2, "orange"), (0.5, "red")),
        )
    )
    d = d.with_panel(
        b.stat(
            "CSRF violations",
            "short",
            f"sum(increase({sel('tdd_csrf_violations_total')}[$__range]))",
            description="CSRF token violations during the time range.",
            thresholds=((None, "green"), (1, "orange"), (6, "red")),
        )
    )
    d = d.with_panel(
        b.stat(
            "Rate-limit hits",
            "short",
            f"sum(increase({sel('tdd_rate_limit_hits_total')}[$__range]))",
            description="Requests rejected by rate limiting during the time range. Orange: any.",
            thresholds=((None, "green"), (1, "orange")),
        )
    )
    d = d.with_row(b.row("Over time"))
    d = d.with_panel(
        b.timeseries(
            "Authentication attempts",
            "ops",
            [
                (
                    f"sum by (result) (rate({sel('tdd_auth_attempts_total')}[$__rate_interval]))",
                    "{{result}}",
                )
            ],
            description="Login attempts per second by result.",
            stacked=True,
            no_thresholds="attempts by result, successes included; failures have the "
            "AuthFailureSpike line in Failed logins per service.",
        )
    )
    d = d.with_panel(
        b.timeseries(
            "Failed logins per service",
            "ops",
            [
                (
                    f"sum by (job) (rate({sel('tdd_auth_attempts_total', FAILURE)}"
                    "[$__rate_interval]))",
                    "{{job}}",
                )
            ],
            description="AuthFailureSpike fires above 0.2/s sustained for 5m.",
            thresholds=((None, "green"), (AUTH_FAILURES_WARNING_PER_S, "orange")),
        )
    )
    d = d.with_panel(
        b.timeseries(
            "CSRF violations and rate-limit hits",
            "ops",
            [
                (
                    f"sum(rate({sel('tdd_csrf_violations_total')}[$__rate_interval]))",
                    "CSRF violations",
                ),
                (
                    f"sum(rate({sel('tdd_rate_limit_hits_total')}[$__rate_interval]))",
                    "rate-limit hits",
                ),
            ],
            description="Per second. Orange: any.",
            thresholds=((None, "green"), (ANY_PER_S, "orange")),
        )
    )
    d = d.with_panel(
        b.timeseries(
            "Security events by type",
            "ops",
            [
                (
                    f"sum by (event_type) (rate({sel('tdd_security_events_total')}"
                    "[$__rate_interval]))",
                    "{{event_type}}",
                )
            ],
            description="security_event() calls per second by event_type.",
            stacked=True,
            no_thresholds="routine events (successful logins) stacked with attacks; the stats "
            "and CSRF violations and rate-limit hits carry the thresholds.",
        )
    )
    return d


#: file name -> builder function. The file names are part of the interface
#: (GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH points at overview.json).
DASHBOARDS = {
    "overview.json": overview,
    "performance.json": performance,
    "business.json": business,
    "security.json": security,
}


# Burn-rate windows of the SLO alerts (otel_tdd/slo_rules.py), for the SLO dashboards.
SLO_BURN_WINDOWS = ("5m", "1h", "6h", "1d", "3d")
SLO_PAGE_BURN = 14.4  # the fastest page alert's factor


def slo_dashboard(b: _Builder, service: str, objectives: Sequence[Mapping[str, Any]]) -> Any:
    """SLO - <service>: per objective, the budget left, the SLI and the burn rates.

    Built by `otel-tdd slo generate` from a team's SLO spec, on the series its
    generated rules record (slo:* labelled service and slo). ``objectives``: dicts
    of name, objective (percent), window (28d/30d), kind, budget (ratio).
    """
    d = b.dashboard(
        f"otel-tdd-slo-{service}",
        f"SLO - {service}",
        f"Service-level objectives of {service}: error budget left, SLI, burn rates "
        "(docs/slo.md). Generated from the service's SLO spec.",
        ["slo"],
    ).time("now-7d", "now")
    for slo in objectives:
        labels = f'service="{service}", slo="{slo["name"]}"'
        window, objective = slo["window"], float(slo["objective"])
        d = d.with_row(b.row(f"{slo['name']}: {objective:g} % over {window} ({slo['kind']})"))
        d = d.with_panel(
            b.stat(
                "Error budget remaining",
                "percentunit",
                f"slo:error_budget_remaining:ratio{{{labels}}}",
                description=f"Share of the {window} error budget not yet spent. Red when "
                "spent, orange under a quarter.",
                thresholds=((None, "red"), (0, "orange"), (0.25, "green")),
            )
        )
        d = d.with_panel(
            b.stat(
                f"SLI over {window}",
                "percentunit",
                f"1 - slo:sli_error:ratio_rate{window}{{{labels}}}",
                description=f"Share of good events over {window}; red under the objective.",
                thresholds=((None, "red"), (objective / 100, "green")),
            )
        )
        d = d.with_panel(
            b.timeseries(
                "Burn rate",
                "none",
                [
                    (
                        f"slo:sli_error:ratio_rate{w}{{{labels}}} / on(service, slo) "
                        f"slo:error_budget:ratio{{{labels}}}",
                        w,
                    )
                    for w in SLO_BURN_WINDOWS
                ],
                description="How many times faster than the objective allows the budget "
                "burns, per window. 1 spends it exactly over the window; orange from 1, "
                f"red from {SLO_PAGE_BURN:g} (the fast page alert).",
                thresholds=((None, "green"), (1, "orange"), (SLO_PAGE_BURN, "red")),
                min_value=0,
                span=12,
            )
        )
        d = d.with_panel(
            b.timeseries(
                "SLI (good events)",
                "percentunit",
                [(f"1 - slo:sli_error:ratio_rate5m{{{labels}}}", "5m")],
                description="Share of good events over 5 minutes; red under the objective.",
                thresholds=((None, "red"), (objective / 100, "green")),
                max_value=1,
                span=12,
            )
        )
    return d


def build_slo(service: str, objectives: Sequence[Mapping[str, Any]]) -> str:
    """The SLO dashboard's JSON text (what `otel-tdd slo generate` writes)."""
    sdk = _sdk()
    dashboard = slo_dashboard(_Builder(sdk), service, objectives).build()
    return str(sdk.JSONEncoder(sort_keys=True, indent=2).encode(dashboard)) + "\n"


def build_all() -> dict[str, str]:
    """File name -> the JSON text the generator produces for it."""
    sdk = _sdk()
    out: dict[str, str] = {}
    for name, build in DASHBOARDS.items():
        dashboard = build(_Builder(sdk)).build()
        text = sdk.JSONEncoder(sort_keys=True, indent=2).encode(dashboard)
        out[name] = text + "\n"
    return out


def write_all(directory: Path = DASHBOARDS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in build_all().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale(directory: Path = DASHBOARDS_DIR) -> list[str]:
    """Names of committed files that differ from what the generator produces."""
    return [
        name
        for name, text in build_all().items()
        if not (directory / name).exists() or (directory / name).read_text(encoding="utf-8") != text
    ]


# --------------------------------------------------------------------------
# Reading the committed JSON (no SDK needed)
# --------------------------------------------------------------------------


def substitute(expr: str, substitutions: Mapping[str, str] | None = None) -> str:
    """Replace Grafana variables in a query; an unknown variable is an error."""
    values = {**DEFAULT_SUBSTITUTIONS, **(substitutions or {})}

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in values:
            raise KeyError(f"no substitution for Grafana variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def _panels(panels: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows nest panels


def panel_queries(
    directory: Path = DASHBOARDS_DIR,
    substitutions: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Every panel query of the committed dashboards, variables substituted.

    One dict per query: dashboard (file name), dashboard_uid, panel (title),
    panel_id, ref_id, expr (substituted) and raw_expr (as in the JSON).
    """
    queries = []
    for path in sorted(directory.glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for panel in _panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                queries.append(
                    {
                        "dashboard": path.name,
                        "dashboard_uid": dashboard.get("uid"),
                        "panel": panel.get("title"),
                        "panel_id": panel.get("id"),
                        "ref_id": target.get("refId"),
                        "raw_expr": target.get("expr"),
                        "expr": substitute(target.get("expr", ""), substitutions),
                    }
                )
    return queries


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if the JSON is stale")
    mode.add_argument("--list-queries", action="store_true", help="print every panel query as JSON")
    parser.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="with --list-queries: override a variable substitution",
    )
    parser.add_argument("--dir", type=Path, default=DASHBOARDS_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.list_queries:
        overrides = dict(item.split("=", 1) for item in args.var)
        json.dump(panel_queries(args.dir, overrides), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if args.check:
        names = stale(args.dir)
        for name in names:
            print(f"stale: {args.dir / name} (run {Path(__file__).name})", file=sys.stderr)
        return 1 if names else 0
    for path in write_all(args.dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
