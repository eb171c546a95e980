"""SLO - <service>: per objective, the budget left, the SLI and the burn rates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .model import Dashboard, Row, Stat, TimeSeries, row

# Burn-rate windows of the SLO alerts (otel_tdd/slo_rules.py), for the SLO dashboards.
SLO_BURN_WINDOWS = ("5m", "1h", "6h", "1d", "3d")
SLO_PAGE_BURN = 14.4  # the fastest page alert's factor


def slo_row(service: str, slo: Mapping[str, Any]) -> Row:
    """One objective's row, on the series its generated rules record (slo:*)."""
    labels = f'service="{service}", slo="{slo["name"]}"'
    window, objective = slo["window"], float(slo["objective"])
    return row(
        f"{slo['name']}: {objective:g} % over {window} ({slo['kind']})",
        Stat(
            "Error budget remaining",
            "percentunit",
            f"slo:error_budget_remaining:ratio{{{labels}}}",
            description=f"Share of the {window} error budget not yet spent. Red when "
            "spent, orange under a quarter.",
            thresholds=((None, "red"), (0, "orange"), (0.25, "green")),
        ),
        Stat(
            f"SLI over {window}",
            "percentunit",
            f"1 - slo:sli_error:ratio_rate{window}{{{labels}}}",
            description=f"Share of good events over {window}; red under the objective.",
            thresholds=((None, "red"), (objective / 100, "green")),
        ),
        TimeSeries(
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
        ),
        TimeSeries(
            "SLI (good events)",
            "percentunit",
            [(f"1 - slo:sli_error:ratio_rate5m{{{labels}}}", "5m")],
            description="Share of good events over 5 minutes; red under the objective.",
            thresholds=((None, "red"), (objective / 100, "green")),
            max_value=1,
            span=12,
        ),
    )


def slo_dashboard(service: str, objectives: Sequence[Mapping[str, Any]]) -> Dashboard:
    """The SLO dashboard of ``service``, built by `otel-tdd slo generate` from its spec.

    ``objectives``: dicts of name, objective (percent), window (28d/30d), kind,
    budget (ratio).
    """
    return Dashboard(
        f"otel-tdd-slo-{service}",
        f"SLO - {service}",
        f"Service-level objectives of {service}: error budget left, SLI, burn rates "
        "(docs/slo.md). Generated from the service's SLO spec.",
        ["slo"],
        rows=[slo_row(service, slo) for slo in objectives],
        time_from="now-7d",
    )
