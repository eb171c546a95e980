"""TDD Framework - Security: authentication, CSRF, rate limiting, security events."""

from __future__ import annotations

from .levels import ANY_PER_S
from .model import AlertStep, Dashboard, Stat, TimeSeries, row
from .promql import FAILURE, sel

ROWS = (
    row(
        "In the selected time range",
        Stat(
            "Failed logins",
            "short",
            f"sum(increase({sel('tdd_auth_attempts_total', FAILURE)}[$__range]))",
            description="Failed authentication attempts during the time range.",
            thresholds=((None, "green"), (100, "orange")),
        ),
        Stat(
            "Login failure ratio",
            "percentunit",
            f"sum(rate({sel('tdd_auth_attempts_total', FAILURE)}[$__range])) / "
            f"sum(rate({sel('tdd_auth_attempts_total')}[$__range]))",
            description="Failed / all authentication attempts during the time range.",
            thresholds=((None, "green"), (0.2, "orange"), (0.5, "red")),
        ),
        Stat(
            "CSRF violations",
            "short",
            f"sum(increase({sel('tdd_csrf_violations_total')}[$__range]))",
            description="CSRF token violations during the time range.",
            thresholds=((None, "green"), (1, "orange"), (6, "red")),
        ),
        Stat(
            "Rate-limit hits",
            "short",
            f"sum(increase({sel('tdd_rate_limit_hits_total')}[$__range]))",
            description="Requests rejected by rate limiting during the time range. Orange: any.",
            thresholds=((None, "green"), (1, "orange")),
        ),
    ),
    row(
        "Over time",
        TimeSeries(
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
        ),
        TimeSeries(
            "Failed logins per service",
            "ops",
            [
                (
                    f"sum by (job) (rate({sel('tdd_auth_attempts_total', FAILURE)}"
                    "[$__rate_interval]))",
                    "{{job}}",
                )
            ],
            description="AuthFailureSpike fires above {AuthFailureSpike}/s sustained for 5m.",
            thresholds=((None, "green"), AlertStep("AuthFailureSpike", "orange")),
        ),
        TimeSeries(
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
        ),
        TimeSeries(
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
        ),
    ),
)

SECURITY = Dashboard(
    "otel-tdd-security",
    "TDD Framework - Security",
    "Authentication failures, CSRF violations, rate-limit hits and security events.",
    ["security"],
    rows=ROWS,
)
