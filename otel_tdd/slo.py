"""Service-level objectives as code: the spec a team keeps next to its code, validated.

Design notes: docs/slo.md, "Implementation notes".
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from otel_tdd.metrics import SECONDS_BUCKETS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "SERIES",
    "SLO",
    "WINDOWS",
    "SLOSpec",
    "Series",
    "SpecError",
    "load_spec",
    "parse_duration",
    "parse_spec",
]

# Compliance windows, in days: the SRE workbook's 28 (four whole weeks) and a month.
WINDOWS = {"28d": 28, "30d": 30}
# The page alert fires at 14.4x the error budget: an objective whose budget makes that
# most of all requests could hardly ever page (and its rule tests could not be built).
FASTEST_BURN = 14.4
MAX_PAGE_ERROR_RATIO = 0.8
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_SERVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,126}$")


class SpecError(ValueError):
    """A bad SLO spec: ``field`` is where (``objectives[1].objective``), the message why."""

    def __init__(self, field: str, message: str, source: str = "") -> None:
        self.field = field
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field}: {message}")


@dataclass(frozen=True)
class Series:
    """Where an objective's events come from, as PromQL building blocks."""

    name: str
    about: str
    service_label: str
    errors: str  # a counter of failed events (metric name + matchers, without the service)
    total: str  # a counter of all events
    histogram: str  # the latency histogram's base name (``_bucket``/``_count``)
    matchers: str  # extra matchers on every series (e.g. server spans only)
    error_matchers: str  # what makes an event of ``total`` a failure, when ``errors`` is total
    bucket_unit_s: float  # seconds per unit of the histogram's ``le``
    buckets: tuple[float, ...]  # the histogram's boundaries, in its unit


_SPAN_BUCKETS_MS = (5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0)

# The series an objective may name. Buckets: otel_tdd.metrics.SECONDS_BUCKETS (the
# catalog's histogram advice) and collector/config.yaml's span_metrics histogram.
SERIES: dict[str, Series] = {
    "catalog": Series(
        name="catalog",
        about="tdd_errors_total over tdd_response_time_seconds_count (otel_tdd.metrics)",
        service_label="job",
        errors="tdd_errors_total",
        total="tdd_response_time_seconds_count",
        histogram="tdd_response_time_seconds",
        matchers="",
        error_matchers="",
        bucket_unit_s=1.0,
        buckets=SECONDS_BUCKETS,
    ),
    "span_metrics": Series(
        name="span_metrics",
        about="the Collector's span metrics of the service's server spans",
        service_label="service_name",
        errors="traces_span_metrics_calls_total",
        total="traces_span_metrics_calls_total",
        histogram="traces_span_metrics_duration_milliseconds",
        matchers='span_kind="SPAN_KIND_SERVER"',
        error_matchers='status_code="STATUS_CODE_ERROR"',
        bucket_unit_s=0.001,
        buckets=_SPAN_BUCKETS_MS,
    ),
}


@dataclass(frozen=True)
class SLO:
    """One objective of a service."""

    service: str
    name: str
    objective: float  # percent, 0 < objective < 100
    window: str  # "28d" | "30d"
    series: Series
    latency_threshold_s: float | None = None  # a latency objective; None: availability
    description: str = ""

    @property
    def budget(self) -> float:
        """The error budget as a ratio of events: 99.9 % -> 0.001."""
        return round(1 - self.objective / 100, 12)

    @property
    def kind(self) -> str:
        return "availability" if self.latency_threshold_s is None else "latency"

    @property
    def le(self) -> float:
        """The latency threshold in the histogram's unit (a bucket boundary)."""
        assert self.latency_threshold_s is not None
        return round(self.latency_threshold_s / self.series.bucket_unit_s, 9)


@dataclass(frozen=True)
class SLOSpec:
    service: str
    objectives: tuple[SLO, ...]
    source: str = ""


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """``"500ms"`` -> 0.5 (seconds); a bare number is seconds. ValueError otherwise."""
    found = _DURATION.match(text.strip())
    if found:
        return float(found.group(1)) * _UNIT_S[found.group(2)]
    return float(text)


def _expect(data: Mapping[str, Any], key: str, kind: type, field: str, source: str) -> Any:
    value = data.get(key)
    if value is None:
        raise SpecError(field, f"missing; it is required ({kind.__name__})", source)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise SpecError(field, f"{value!r} is not a {kind.__name__}", source)
    return value


def _objective(raw: Any, field: str, source: str) -> float:
    if raw is None:
        raise SpecError(field, "missing; required: a percentage such as 99.9", source)
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise SpecError(field, f"{raw!r} is not a number; give a percentage such as 99.9", source)
    value = float(raw)
    lowest = 100 * (1 - MAX_PAGE_ERROR_RATIO / FASTEST_BURN)
    if not 0 < value < 100:
        raise SpecError(
            field,
            f"{raw} is out of range: an objective is a percentage of good events, more "
            f"than {lowest:.2f} (below, the page alert could hardly ever fire) and less than "
            "100 (100 would leave no error budget)",
            source,
        )
    if FASTEST_BURN * (1 - value / 100) >= MAX_PAGE_ERROR_RATIO:
        raise SpecError(
            field,
            f"{raw} leaves a {100 - value:g} % error budget; the page alert fires at "
            f"{FASTEST_BURN}x the budget, when more than "
            f"{FASTEST_BURN * (100 - value):.4g} % of requests fail, so it could hardly ever "
            f"fire (burn-rate alerts need that under {MAX_PAGE_ERROR_RATIO:.0%}): choose "
            f"more than {lowest:.2f} and less than 100",
            source,
        )
    return value


def _threshold(raw: Any, series: Series, field: str, source: str) -> float:
    try:
        seconds = parse_duration(str(raw))
    except ValueError:
        raise SpecError(field, f"{raw!r} is not a duration such as 500ms or 0.5s", source) from None
    unit = "ms" if series.bucket_unit_s == 0.001 else "s"
    boundaries = ", ".join(f"{b:g}{unit}" for b in series.buckets)
    if not any(abs(seconds / series.bucket_unit_s - b) < 1e-9 for b in series.buckets):
        raise SpecError(
            field,
            f"{raw} is not a bucket boundary of {series.histogram} (series {series.name}); "
            f"a latency objective counts the requests under a boundary: choose one of "
            f"{boundaries}",
            source,
        )
    return seconds


def _slo(service: str, data: Any, index: int, source: str) -> SLO:
    at = f"objectives[{index}]"
    if not isinstance(data, Mapping):
        raise SpecError(at, f"{data!r} is not a table of name, objective, window, series", source)
    known = {"name", "objective", "window", "series", "latency_threshold", "description"}
    unknown = sorted(set(data) - known)
    if unknown:
        known_list = ", ".join(sorted(known))
        raise SpecError(f"{at}.{unknown[0]}", f"unknown field; known: {known_list}", source)
    name = _expect(data, "name", str, f"{at}.name", source)
    if not _NAME.match(name):
        raise SpecError(
            f"{at}.name", f"{name!r}: start with a-z, then use a-z, 0-9, - and _", source
        )
    objective = _objective(data.get("objective"), f"{at}.objective", source)
    window = str(data.get("window", "30d"))
    if window not in WINDOWS:
        raise SpecError(f"{at}.window", f"{window!r} is not accepted; choose 28d or 30d", source)
    series_name = str(data.get("series", "catalog"))
    series = SERIES.get(series_name)
    if series is None:
        choices = "; ".join(f"{s.name} ({s.about})" for s in SERIES.values())
        raise SpecError(
            f"{at}.series", f"unknown series {series_name!r}; choose from {choices}", source
        )
    raw_threshold = data.get("latency_threshold")
    threshold = (
        None
        if raw_threshold is None
        else _threshold(raw_threshold, series, f"{at}.latency_threshold", source)
    )
    return SLO(
        service=service,
        name=name,
        objective=objective,
        window=window,
        series=series,
        latency_threshold_s=threshold,
        description=str(data.get("description", "")),
    )


def parse_spec(data: Any, source: str = "") -> SLOSpec:
    """A spec from parsed YAML/TOML; :class:`SpecError` on the first bad field."""
    if not isinstance(data, Mapping):
        raise SpecError("(top level)", "expected a table with service and objectives", source)
    service = _expect(data, "service", str, "service", source)
    if not _SERVICE.match(service):
        raise SpecError("service", f"{service!r} is not a service.name", source)
    objectives = data.get("objectives")
    if not isinstance(objectives, list) or not objectives:
        raise SpecError("objectives", "missing or empty; list at least one objective", source)
    slos = tuple(_slo(service, item, i, source) for i, item in enumerate(objectives))
    names = [slo.name for slo in slos]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise SpecError("objectives", f"the name {duplicate!r} is used twice", source)
    return SLOSpec(service=service, objectives=slos, source=source)


def load_spec(path: Path | str) -> SLOSpec:
    """``slos.yaml`` (any YAML file) or the ``[tool.otel-tdd.slos]`` table of a TOML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError("(file)", f"cannot read it: {error.strerror}", str(path)) from None
    try:
        if path.suffix == ".toml":
            table = tomllib.loads(text).get("tool", {}).get("otel-tdd", {}).get("slos")
            if table is None:
                raise SpecError("[tool.otel-tdd.slos]", "no such table", str(path))
            data: Any = table
        else:
            data = yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as error:
        raise SpecError("(file)", f"not valid YAML/TOML: {error}", str(path)) from None
    return parse_spec(data, str(path))
