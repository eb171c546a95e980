"""What a dashboard shows, as plain data: rows of panel specs (render.py draws them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: How a panel without thresholds says why, at the end of its description.
NO_THRESHOLD = "No threshold: "


@dataclass(frozen=True)
class AlertStep:
    """A threshold step at the number an alert rule compares with, times ``scale``.

    The value is read from compose/prometheus/rules when the dashboard is built,
    so a panel colours exactly what its alert fires on.
    """

    alert: str
    color: str
    scale: float = 1.0


#: One threshold step: (value, colour), value None for the base colour; or an alert's.
Step = tuple[float | None, str] | AlertStep
#: A query and its legend ("" for none).
Query = tuple[str, str]


# A description may state an alert's threshold as {AlertName}, {AlertName:ms} or
# {AlertName:GiB} (alert_rules.describe); other braces are written {{ and }}.


@dataclass(frozen=True)
class Stat:
    """A single-value panel: the last value of one query."""

    title: str
    unit: str
    query: str
    description: str
    thresholds: Sequence[Step] = ()
    no_thresholds: str = ""
    mappings: Mapping[str, tuple[str, str]] | None = None
    legend: str = ""
    span: int = 6
    height: int = 4


@dataclass(frozen=True)
class TimeSeries:
    """A graph of one or more queries."""

    title: str
    unit: str
    queries: Sequence[Query]
    description: str
    thresholds: Sequence[Step] = ()
    no_thresholds: str = ""
    min_value: float | None = None
    max_value: float | None = None
    stacked: bool = False
    #: Show the exemplars of the histogram buckets queried (each a trace id that opens
    #: in Jaeger): only a query over a ``_bucket`` series has them.
    exemplars: bool = False
    span: int = 12
    height: int = 8


@dataclass(frozen=True)
class Logs:
    """A logs panel: the newest records of one LogsQL query, from VictoriaLogs."""

    title: str
    query: str
    description: str
    span: int = 24
    height: int = 10


Panel = Stat | TimeSeries | Logs


@dataclass(frozen=True)
class Row:
    """A titled row and the panels under it, left to right, top to bottom."""

    title: str
    panels: Sequence[Panel]


def row(title: str, *panels: Panel) -> Row:
    """`Row(title, panels)`, written as the row's title followed by its panels."""
    return Row(title, panels)


@dataclass(frozen=True)
class Dashboard:
    """A whole dashboard: its header and its rows."""

    uid: str
    title: str
    description: str
    tags: Sequence[str]
    rows: Sequence[Row]
    time_from: str = "now-1h"
