"""The thresholds of the alert rules (compose/prometheus/rules/*.yml), for the panels."""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path

import yaml

RULES_DIR = Path(__file__).resolve().parents[2] / "prometheus" / "rules"

# `<expression> <comparison> <number>[ * <number>...]` at the end of an alert's expr.
_THRESHOLD = re.compile(r"(?:>=?|<=?|==|!=)\s*([0-9.eE+-]+(?:\s*\*\s*[0-9.eE+-]+)*)\s*$")
_COMPARISON = re.compile(r">=?|<=?|==|!=")
# What may hold a comparison sign that is not one: strings and label matchers.
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\{[^}]*\}')


def _number(expr: str) -> float | None:
    """The threshold of `expr` if it has one comparison, at its end, with a number."""
    expr = expr.strip()
    if len(_COMPARISON.findall(_QUOTED.sub("", expr))) != 1:
        return None  # none, or a guard besides the threshold (`... and on (job) x >= 1`)
    match = _THRESHOLD.search(expr)
    if match is None:
        return None
    # PromQL numbers are float64, and so is the product.
    return math.prod(float(factor) for factor in match.group(1).split("*"))


@functools.cache
def alert_thresholds(directory: Path = RULES_DIR) -> dict[str, float]:
    """Alert name -> the number its expression ends by comparing with.

    Alerts of another shape (`... > 0.05 and on (job) x >= 1`) are left out: a
    panel that asks for one gets an error from `threshold`.
    """
    found: dict[str, float] = {}
    for path in sorted(directory.glob("*.yml")):
        for group in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("groups", []):
            for rule in group.get("rules", []):
                value = _number(str(rule.get("expr", "")))
                if "alert" in rule and value is not None:
                    found[rule["alert"]] = value
    return found


def threshold(alert: str, directory: Path | None = None) -> float:
    """The number alert rule ``alert`` fires beyond; a clear error if there is none."""
    directory = directory or RULES_DIR
    thresholds = alert_thresholds(directory)
    if alert not in thresholds:
        raise KeyError(
            f"no alert rule {alert!r} ending in '<comparison> <number>' in {directory}/*.yml "
            f"(found: {', '.join(sorted(thresholds))}): fix the panel's AlertStep or the rule"
        )
    return thresholds[alert]


# How a description may write an alert's threshold: {Alert}, {Alert:ms}, {Alert:GiB}.
_SCALES = {"": 1.0, "ms": 1000.0, "GiB": 1 / 1024**3}


class _Threshold:
    """An alert's threshold inside str.format: `g`-formatted, optionally rescaled."""

    def __init__(self, alert: str, value: float) -> None:
        self.alert, self.value = alert, value

    def __format__(self, spec: str) -> str:
        if spec not in _SCALES:
            raise ValueError(
                f"{{{self.alert}:{spec}}}: unknown scale {spec!r} (use one of "
                f"{', '.join(repr(s) for s in _SCALES)})"
            )
        return format(self.value * _SCALES[spec], "g")


class _Thresholds(dict[str, _Threshold]):
    def __missing__(self, alert: str) -> _Threshold:
        return _Threshold(alert, threshold(alert))


def describe(text: str) -> str:
    """``text`` with each {Alert}, {Alert:ms} or {Alert:GiB} replaced by that alert's
    threshold, so a description states the number the rule fires on."""
    return text.format_map(_Thresholds())
