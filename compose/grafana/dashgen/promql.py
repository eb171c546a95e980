"""PromQL pieces the panels share: the app's label filter, quantiles, Collector counters."""

from __future__ import annotations

# The label filter every app query carries.
_APP = 'job=~"$service", instance=~"$instance"'
FAILURE = 'result="failure"'
SPAN_ERROR = 'status_code="STATUS_CODE_ERROR"'


def sel(metric: str, extra: str = "") -> str:
    """`metric{job=~"$service", instance=~"$instance"[, extra]}`."""
    labels = f"{_APP}, {extra}" if extra else _APP
    return f"{metric}{{{labels}}}"


def quantile(
    q: float, histogram: str, by: str = "", extra: str = "", window: str = "$__rate_interval"
) -> str:
    """A quantile of a histogram: the per-bucket rate, summed by `le`.

    The seed wrote histogram_quantile(0.95, metric): Prometheus cannot take a
    quantile of a bare histogram name; it needs the rate of each bucket. Over the
    buckets (not a recording rule) a panel can show their exemplars.
    """
    keep = f"{by}, le" if by else "le"
    buckets = sel(f"{histogram}_bucket", extra)
    return f"histogram_quantile({q}, sum by ({keep}) (rate({buckets}[{window}])))"


#: Error and fatal records in VictoriaLogs: OTLP's severity_number (ERROR is 17..20,
#: FATAL 21..24), whatever the text says (ERROR, error, CRITICAL). LogsQL.
ERROR_LOGS = "severity_number:>=17"


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


def otelcol_accepted(by: str, items: str) -> str:
    """`sum by (<by>)` of the rate of `otelcol_receiver_accepted_<items>`, either spelling."""
    return (
        f'sum by ({by}) (rate({{__name__=~"otelcol_receiver_accepted_{items}(_total)?"}}'
        "[$__rate_interval]))"
    )
