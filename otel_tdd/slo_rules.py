"""Prometheus rules and their ``promtool test rules`` files, from an SLO spec.

Design notes: docs/slo.md, "Implementation notes".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from otel_tdd.slo import SLO, WINDOWS, SLOSpec

__all__ = [
    "BURN_ALERTS",
    "RATIO_WINDOWS",
    "RUNBOOK_BASE",
    "BurnAlert",
    "format_duration",
    "render_rule_tests",
    "render_rules",
]

RATIO_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
RUNBOOK_BASE = "https://github.com/otel-tdd/otel-tdd/blob/main/docs/runbooks/"
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class BurnAlert:
    """One window pair: fires when both windows burn the budget ``factor`` times too fast."""

    kind: str  # page | ticket
    factor: float
    long: str
    short: str

    @property
    def alertname(self) -> str:
        """``SLOBurnRatePage1h``: one name per pair, so each pair is tested on its own."""
        return f"{self.runbook}{self.long}"

    @property
    def runbook(self) -> str:
        """docs/runbooks/<this>.md: what to do depends on page or ticket, not on the pair."""
        return "SLOBurnRatePage" if self.kind == "page" else "SLOBurnRateTicket"

    @property
    def severity(self) -> str:
        return "critical" if self.kind == "page" else "warning"


# The SRE workbook's table (chapter 5, "Alerting on SLOs"), for a 30-day window: page at
# 2 % of the budget spent in 1h or 5 % in 6h; ticket at 10 % in 1d or 10 % in 3d.
BURN_ALERTS = (
    BurnAlert("page", 14.4, "1h", "5m"),
    BurnAlert("page", 6.0, "6h", "30m"),
    BurnAlert("ticket", 3.0, "1d", "2h"),
    BurnAlert("ticket", 1.0, "3d", "6h"),
)


def _seconds(nominal: str) -> float:
    unit = "ms" if nominal.endswith("ms") else nominal[-1]
    return float(nominal[: -len(unit)]) * _SECONDS[unit]


def format_duration(seconds: float) -> str:
    """A Prometheus duration in the largest whole unit: 3600 -> ``1h``, 1.5 -> ``1500ms``."""
    millis = round(seconds * 1000)
    if millis <= 0:
        raise ValueError(f"duration {seconds}s rounds to 0ms: use a larger scale")
    for unit in ("d", "h", "m", "s"):
        size = int(_SECONDS[unit] * 1000)
        if millis % size == 0:
            return f"{millis // size}{unit}"
    return f"{millis}ms"


def _number(value: float) -> str:
    return f"{value:.10g}"


def _le_matcher(bound: float) -> str:
    """``le`` as the Collector writes it (Go: ``0.5``, ``1``) or as Prometheus 3 does (``1.0``)."""
    go = _number(bound)
    python = repr(float(bound))
    if go == python:
        return f'le="{go}"'
    escaped = python.replace(".", r"\\.")  # a regex dot, escaped again for a PromQL string
    return f'le=~"{go}|{escaped}"'


def _selector(slo: SLO, metric: str, *extra: str) -> str:
    series = slo.series
    matchers = [f'{series.service_label}="{slo.service}"', series.matchers, *extra]
    return f"{metric}{{{', '.join(m for m in matchers if m)}}}"


def error_ratio(slo: SLO, window: str) -> str:
    """PromQL: the share of bad events over ``window`` (a Prometheus duration)."""
    series = slo.series
    if slo.latency_threshold_s is None:
        errors = _selector(slo, series.errors, series.error_matchers)
        total = _selector(slo, series.total)
        # An error counter's series appears at the first failure: until then the sum is
        # empty, and without `or vector(0)` a healthy service's ratio has no value at all
        # (its budget and dashboard say "No data"). Both sides are label-free sums, so
        # the division matches; the rules' `labels:` add service and slo.
        return f"(sum(rate({errors}[{window}])) or vector(0))\n/\nsum(rate({total}[{window}]))"
    count = _selector(slo, f"{series.histogram}_count")
    good = _selector(slo, f"{series.histogram}_bucket", _le_matcher(slo.le))
    return (
        f"(sum(rate({count}[{window}])) - sum(rate({good}[{window}])))\n"
        f"/\nsum(rate({count}[{window}]))"
    )


def _labels(slo: SLO) -> dict[str, str]:
    return {"service": slo.service, "slo": slo.name}


def _selector_of(record: str, slo: SLO) -> str:
    return f'{record}{{service="{slo.service}", slo="{slo.name}"}}'


def _ratio_record(window: str) -> str:
    return f"slo:sli_error:ratio_rate{window}"


def alert_labels(slo: SLO, alert: BurnAlert) -> dict[str, str]:
    return {
        "severity": alert.severity,
        **_labels(slo),
        # A page silences the ticket of the same objective (compose/alertmanager inhibit_rules).
        "symptom": f"slo-{slo.name}",
        "long_window": alert.long,
        "short_window": alert.short,
    }


def alert_annotations(slo: SLO, alert: BurnAlert) -> dict[str, str]:
    days = WINDOWS[slo.window]
    threshold = alert.factor * slo.budget
    what = (
        "requests failed"
        if slo.kind == "availability"
        else (f"requests took longer than {slo.latency_threshold_s:g}s")
    )
    return {
        "summary": f"{slo.service}: SLO {slo.name} burns its error budget "
        f"{alert.factor:g}x too fast",
        "description": f"Over the last {alert.long} and the last {alert.short}, more than "
        f"{threshold * 100:.4g} % of {slo.service}'s {what} (objective {slo.objective:g} % over "
        f"{slo.window}). At this rate the {slo.window} error budget is gone in "
        f"{days / alert.factor:.1f} days." + (f" {slo.description}" if slo.description else ""),
        "runbook_url": f"{RUNBOOK_BASE}{alert.runbook}.md",
    }


def _alert_rule(slo: SLO, alert: BurnAlert) -> dict[str, Any]:
    threshold = _number(alert.factor * slo.budget)
    long_ratio = _selector_of(_ratio_record(alert.long), slo)
    short_ratio = _selector_of(_ratio_record(alert.short), slo)
    return {
        "alert": alert.alertname,
        # No `for:`: the short window is the debounce (it must burn too), and a `for:`
        # would delay the page by its length on top of the long window's own delay.
        "expr": f"{long_ratio} > {threshold}\nand\n{short_ratio} > {threshold}",
        "labels": alert_labels(slo, alert),
        "annotations": alert_annotations(slo, alert),
    }


def _groups(slo: SLO, scale: float) -> list[dict[str, Any]]:
    def scaled(nominal: str) -> str:
        return format_duration(_seconds(nominal) * scale)

    ratios = [
        {"record": _ratio_record(w), "expr": error_ratio(slo, scaled(w)), "labels": _labels(slo)}
        for w in RATIO_WINDOWS
    ]
    burn: dict[str, Any] = {
        "name": f"slo-{slo.service}-{slo.name}",
        "rules": ratios + [_alert_rule(slo, alert) for alert in BURN_ALERTS],
    }
    window_ratio = _ratio_record(slo.window)
    budget_rules: list[dict[str, Any]] = [
        {"record": "slo:objective:ratio", "expr": _number(slo.objective / 100)},
        {"record": "slo:error_budget:ratio", "expr": _number(slo.budget)},
        {"record": window_ratio, "expr": error_ratio(slo, scaled(slo.window))},
        {
            "record": "slo:error_budget_remaining:ratio",
            "expr": f"1 - {_selector_of(window_ratio, slo)} / {_number(slo.budget)}",
        },
    ]
    for rule in budget_rules:
        rule["labels"] = _labels(slo)
    # Over the whole window this reads a month of samples: once a minute is plenty.
    budget = {
        "name": f"slo-{slo.service}-{slo.name}-budget",
        "interval": scaled("1m"),
        "rules": budget_rules,
    }
    # Always set: left to the global (compose's 5s) it would run seven rate() up to [3d]
    # every 5s per objective. 30s is well under the shortest window's 5m.
    burn["interval"] = format_duration(max(1.0, 30 * scale))
    return [burn, budget]


def render_rules(spec: SLOSpec, scale: float = 1.0) -> dict[str, Any]:
    """The rule file of ``spec``'s service (a ``groups:`` document)."""
    return {"groups": [g for slo in spec.objectives for g in _groups(slo, scale)]}


# --- promtool tests ----------------------------------------------------------------------

EVENTS_PER_STEP = 1000  # requests per test step; errors are a share of them
STEPS_PER_SHORT = 5  # test samples in the short window: enough for rate()


def _counter(phases: Sequence[tuple[int, float]]) -> str:
    """promtool's expanding notation for a counter from 0 growing by ``inc`` per step."""
    parts, value = ["0"], 0.0
    for steps, inc in phases:
        parts.append(f"{_number(value + inc)}+{_number(inc)}x{steps - 1}")
        value += inc * steps
    return " ".join(parts)


def _input_series(
    slo: SLO, bad: Sequence[tuple[int, float]], *, error_series: bool = True
) -> list[dict[str, str]]:
    """Series where ``bad`` gives (steps, share of bad events) phases; totals are steady.

    Without ``error_series`` an availability SLI's error counter is left out: a service
    that never failed, whose error series does not exist yet."""
    q = EVENTS_PER_STEP
    total = [(steps, float(q)) for steps, _ in bad]
    bads = [(steps, q * share) for steps, share in bad]
    goods = [(steps, q * (1 - share)) for steps, share in bad]
    series = slo.series
    if slo.latency_threshold_s is not None:
        bucket = f'le="{_number(slo.le)}"'
        pairs = [
            (_selector(slo, f"{series.histogram}_count"), total),
            (_selector(slo, f"{series.histogram}_bucket", bucket), goods),
        ]
    elif series.errors == series.total:  # span metrics: errors are one status of the calls
        pairs = [
            (_selector(slo, series.total, 'status_code="STATUS_CODE_UNSET"'), goods),
            (_selector(slo, series.total, series.error_matchers), bads),
        ][: 2 if error_series else 1]
    else:
        pairs = [(_selector(slo, series.total), total), (_selector(slo, series.errors), bads)][
            : 2 if error_series else 1
        ]
    return [{"series": name, "values": _counter(phases)} for name, phases in pairs]


def _check(slo: SLO, window: str, threshold: float, above: bool, at: str) -> dict[str, Any]:
    """A PromQL test proving which side of the threshold a window is on."""
    labels = f'{{service="{slo.service}", slo="{slo.name}"}}'
    return {
        "expr": f"{_selector_of(_ratio_record(window), slo)} > bool {_number(threshold)}",
        "eval_time": at,
        "exp_samples": [{"labels": labels, "value": 1 if above else 0}],
    }


def _case(
    slo: SLO,
    alert: BurnAlert,
    name: str,
    bad: Sequence[tuple[int, float]],
    above: tuple[bool, bool],
    step: float,
) -> dict[str, Any]:
    """One promtool case: ``above`` says which windows (long, short) are over the
    threshold at the end; the alert is expected exactly when both are."""
    at = format_duration(sum(n for n, _ in bad) * step)
    threshold = alert.factor * slo.budget
    expected = [
        {"exp_labels": alert_labels(slo, alert), "exp_annotations": alert_annotations(slo, alert)}
    ]
    return {
        "name": f"{alert.alertname} {alert.long}/{alert.short} {slo.name}: {name}",
        "interval": format_duration(step),
        "input_series": _input_series(slo, bad),
        "promql_expr_test": [
            _check(slo, alert.long, threshold, above[0], at),
            _check(slo, alert.short, threshold, above[1], at),
        ],
        "alert_rule_test": [
            {
                "eval_time": at,
                "alertname": alert.alertname,
                "exp_alerts": expected if all(above) else [],
            }
        ],
    }


def render_rule_tests(
    spec: SLOSpec, rule_file: str, scale: float = 1.0
) -> dict[str, dict[str, Any]]:
    """File name -> promtool test document, one per objective and window pair.

    Each pair gets its own file so its step can be a fifth of its short window (a 3d
    window in 1-minute steps would be 4,000 evaluations per case). Three cases: errors
    all along (fires); errors stopped one short window ago (long above, short below:
    silent); errors only in the last short window (short above, long below: silent).
    Other pairs may fire in these cases too: each pair has its own alertname, so a
    case's expectation is about its own pair only.
    """
    files: dict[str, dict[str, Any]] = {}
    for slo in spec.objectives:
        for alert in BURN_ALERTS:
            step = _seconds(alert.short) * scale / STEPS_PER_SHORT
            long_steps = round(_seconds(alert.long) * scale / step)
            total = long_steps + STEPS_PER_SHORT
            # Twice the threshold: the long window stays above it with the last 7 of 65
            # steps clean, the short-only burst keeps the long window far below it. With
            # the threshold under 0.8 (slo.MAX_PAGE_ERROR_RATIO) both hold when capped at 1.
            share = min(1.0, 2 * alert.factor * slo.budget)
            gap = STEPS_PER_SHORT + 2
            cases = [
                _case(slo, alert, "fires", [(total, share)], (True, True), step),
                _case(slo, alert, "long", [(total - gap, share), (gap, 0.0)], (True, False), step),
                _case(slo, alert, "short", [(total - gap, 0.0), (gap, share)], (False, True), step),
            ]
            files[f"slo-{slo.service}-{slo.name}-{alert.long}.test.yml"] = {
                "rule_files": [rule_file],
                "evaluation_interval": format_duration(step),
                "tests": cases,
            }
        files[f"slo-{slo.service}-{slo.name}-budget.test.yml"] = _budget_test(slo, rule_file, scale)
    return files


def _budget_test(slo: SLO, rule_file: str, scale: float) -> dict[str, Any]:
    """Half the budget's share of bad events all over the window: half the budget is
    left; no failure ever (no error series at all): all of it is left."""
    days = WINDOWS[slo.window]
    step = 86400 * scale
    at = format_duration(days * step)
    labels = f'{{service="{slo.service}", slo="{slo.name}"}}'

    def value(record: str, expected: float) -> dict[str, Any]:
        # Rounded: promtool (2.42) compares floats exactly, and a ratio of rates is
        # 0.49999999999999 rather than 0.5.
        return {
            "expr": f"round({_selector_of(record, slo)}, 0.000001)",
            "eval_time": at,
            "exp_samples": [{"labels": labels, "value": float(_number(round(expected, 6)))}],
        }

    return {
        "rule_files": [rule_file],
        "evaluation_interval": format_duration(step),
        "tests": [
            {
                "name": f"{slo.name}: half the error budget spent over {slo.window}",
                "interval": format_duration(step),
                "input_series": _input_series(slo, [(days, slo.budget / 2)]),
                "promql_expr_test": [
                    value("slo:objective:ratio", slo.objective / 100),
                    value("slo:error_budget:ratio", slo.budget),
                    value("slo:error_budget_remaining:ratio", 0.5),
                ],
            },
            {
                "name": f"{slo.name}: no failure yet, the whole error budget is left",
                "interval": format_duration(step),
                "input_series": _input_series(slo, [(days, 0.0)], error_series=False),
                "promql_expr_test": [value("slo:error_budget_remaining:ratio", 1.0)],
            },
        ],
    }
