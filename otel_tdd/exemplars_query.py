"""Read exemplars, the trace ids behind a histogram's observations, from Prometheus.

``/api/v1/query_exemplars`` through the same bounded HTTP helpers and
:class:`~otel_tdd.stores_query.StoreQueryError` as the trace and log stores.
"""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from otel_tdd.store_http import TIMEOUT, HTTPStatusError, StoreQueryError, open_url, parse_json

__all__ = ["TRACE_ID_LABELS", "Exemplar", "fetch_exemplars"]


@dataclass(frozen=True)
class Exemplar:
    """One exemplar: the observed value, its series and the trace it came from."""

    value: float
    timestamp: float
    trace_id: str
    span_id: str
    series: Mapping[str, str]


# Exemplar labels that carry a trace id: the Collector's prometheus exporter
# writes trace_id; some other instrumentations write traceID.
TRACE_ID_LABELS = ("trace_id", "traceID", "traceId")


def fetch_exemplars(
    base_url: str,
    metric: str,
    *,
    since: float = 900.0,
    now: float | None = None,
    timeout: float = TIMEOUT,
) -> list[Exemplar]:
    """Exemplars with a trace id for ``metric`` (a histogram's ``_bucket`` is implied),
    slowest first."""
    selector = metric
    if re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", metric) and not metric.endswith(
        ("_bucket", "_total", "_count", "_sum")
    ):
        selector = f"{metric}_bucket"
    end = time.time() if now is None else now
    params = {"query": selector, "start": f"{end - since:.3f}", "end": f"{end:.3f}"}
    url = f"{base_url.rstrip('/')}/api/v1/query_exemplars?{urllib.parse.urlencode(params)}"
    try:
        body = open_url(url, "Prometheus", timeout=timeout)
    except HTTPStatusError as exc:
        if exc.status == 400:
            raise StoreQueryError(f"Prometheus refused the selector {selector!r}: {exc}") from exc
        raise
    data = parse_json(body, "Prometheus", url)
    found = []
    for series in data.get("data") or []:
        labels = dict(series.get("seriesLabels") or {})
        for raw in series.get("exemplars") or []:
            ex_labels = raw.get("labels") or {}
            trace_id = next((ex_labels[k] for k in TRACE_ID_LABELS if k in ex_labels), "")
            if trace_id:
                found.append(
                    Exemplar(
                        value=float(raw["value"]),
                        timestamp=float(raw["timestamp"]),
                        trace_id=trace_id,
                        span_id=ex_labels.get("span_id", ex_labels.get("spanID", "")),
                        series=labels,
                    )
                )
    return sorted(found, key=lambda e: (-e.value, -e.timestamp))
