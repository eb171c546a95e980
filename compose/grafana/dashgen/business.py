"""TDD Framework - Business: epics, tasks, focus sessions, productivity."""

from __future__ import annotations

from .levels import FOCUS_LONG_S, FOCUS_SHORT_S, IDLE_THRESHOLDS, PRODUCTIVITY_THRESHOLDS, VOLUME
from .model import Dashboard, Stat, TimeSeries, row
from .promql import quantile, sel

ROWS = (
    row(
        "In the selected time range",
        Stat(
            "Epics created",
            "short",
            f"sum(increase({sel('tdd_epics_created_total')}[$__range]))",
            description="Epics created during the dashboard's time range. Orange: none (nobody "
            "working, or the app not reporting).",
            thresholds=IDLE_THRESHOLDS,
        ),
        Stat(
            "Tasks completed",
            "short",
            f"sum(increase({sel('tdd_tasks_completed_total')}[$__range]))",
            description="Tasks completed during the dashboard's time range. Orange: none (nobody "
            "working, or the app not reporting).",
            thresholds=IDLE_THRESHOLDS,
        ),
        Stat(
            "Focus sessions",
            "short",
            f"sum(increase({sel('tdd_focus_sessions_total')}[$__range]))",
            description="Focus sessions started during the dashboard's time range. Orange: "
            "none (nobody working, or the app not reporting).",
            thresholds=IDLE_THRESHOLDS,
        ),
        Stat(
            "Productivity score",
            "none",
            f"avg({sel('tdd_user_productivity_score')})",
            description="tdd_user_productivity_score averaged over instances (an aggregate "
            "gauge: no user_id label): tasks completed per focus hour. Orange below 1.",
            thresholds=PRODUCTIVITY_THRESHOLDS,
        ),
    ),
    row(
        "Rates",
        TimeSeries(
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
        ),
        TimeSeries(
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
        ),
    ),
    row(
        "Focus and engagement",
        TimeSeries(
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
        ),
        TimeSeries(
            "Productivity score",
            "none",
            [(f"avg by (job) ({sel('tdd_user_productivity_score')})", "{{job}}")],
            description="Average productivity score per service (tasks completed per focus "
            "hour). Orange below 1.",
            span=8,
            thresholds=PRODUCTIVITY_THRESHOLDS,
        ),
        TimeSeries(
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
        ),
    ),
)

BUSINESS = Dashboard(
    "otel-tdd-business",
    "TDD Framework - Business",
    "Epics, tasks, focus sessions and productivity. No per-user series: user_id is "
    "never a metric label (cardinality); per-user questions go to logs and traces.",
    ["business"],
    rows=ROWS,
)
