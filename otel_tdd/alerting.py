"""``alert()``: alerts from code, into the same Alertmanager routing tree as the Prometheus rules.

Alerts are posted to Alertmanager's API v2 (``POST /api/v2/alerts``) by one
background thread from a bounded queue, so ``alert()`` never blocks on the
network: when Alertmanager is down the call returns at once, the failure is
counted in ``tdd_alerts_failed_total`` and logged once per outage. Repeats of the
same alert within ``dedup_window_s`` are not re-posted (Alertmanager would group
them anyway; this keeps a hot loop from flooding it).

Without ``OTEL_TDD_ALERTMANAGER_URL`` an alert is still a log record, a span
event and a metric: nothing is lost, it just is not routed.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from otel_tdd import _runtime

if TYPE_CHECKING:
    from otel_tdd.structured_logging import StructuredLogger

__all__ = ["SEVERITIES", "AlertmanagerClient", "alert", "on_threshold_exceeded"]

SEVERITIES = ("info", "warning", "critical")
_internal = logging.getLogger("otel_tdd.alerting")


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class AlertmanagerClient:
    """Posts alerts to Alertmanager API v2 from a background thread, never blocking the caller."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 2.0,
        queue_size: int = 256,
        dedup_window_s: float = 300.0,
    ) -> None:
        self.url = base_url.rstrip("/") + "/api/v2/alerts"
        self.timeout_s = timeout_s
        self.dedup_window_s = dedup_window_s
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(queue_size)
        self._last_sent: dict[tuple[tuple[str, str], ...], float] = {}
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="otel-tdd-alertmanager", daemon=True)
        self._thread.start()

    def submit(self, payload: dict[str, Any]) -> bool:
        """Queue one alert; False when it was a duplicate or the queue was full (counted)."""
        from otel_tdd.metrics import catalog

        key = tuple(sorted(payload["labels"].items()))
        now = time.monotonic()
        last = self._last_sent.get(key)
        if last is not None and now - last < self.dedup_window_s:
            return False
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            catalog.alerts_failed.add(1, {"reason": "queue_full"})
            return False
        self._last_sent[key] = now
        return True

    def _run(self) -> None:
        while True:
            payload = self._queue.get()
            try:
                if payload is None:
                    return
                self._post(payload)
            finally:
                self._queue.task_done()

    def _post(self, payload: dict[str, Any]) -> None:
        from otel_tdd.metrics import catalog

        body = json.dumps([payload]).encode()
        request = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
        except (OSError, urllib.error.URLError) as error:
            catalog.alerts_failed.add(1, {"reason": "unreachable"})
            # Not delivered, so not a duplicate: the next repeat is posted again.
            self._last_sent.pop(tuple(sorted(payload["labels"].items())), None)
            if not self._failing:
                self._failing = True
                _internal.warning(
                    "Alertmanager at %s is unreachable (%s); alerts are counted in "
                    "tdd_alerts_failed_total until it answers again",
                    self.url,
                    error,
                )
            return
        catalog.alerts_sent.add(1)
        if self._failing:
            self._failing = False
            _internal.info("Alertmanager at %s answers again", self.url)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until the queue is drained (bounded)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def close(self, timeout_s: float = 5.0) -> None:
        self.flush(timeout_s)
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            return
        self._thread.join(timeout_s)


def _client() -> AlertmanagerClient | None:
    runtime = _runtime.current()
    url = runtime.settings.alertmanager_url
    if url is None:
        return None
    client = runtime.extras.get("alertmanager")
    if client is None:
        client = AlertmanagerClient(url)
        runtime.extras["alertmanager"] = client
        runtime.closers.append(client.close)
    assert isinstance(client, AlertmanagerClient)
    return client


def build_payload(
    name: str,
    data: Mapping[str, Any],
    severity: str,
    channels: Sequence[str],
    service: str,
    ends_in: timedelta = timedelta(minutes=5),
) -> dict[str, Any]:
    """Alertmanager v2 alert: labels route it, annotations describe it (all strings)."""
    now = datetime.now(timezone.utc)
    labels = {"alertname": name, "severity": severity, "service": service, "source": "code"}
    if channels:
        labels["channel"] = ",".join(channels)
    annotations = {
        "summary": str(data.get("summary") or name.replace("_", " ")),
        "description": str(data.get("description") or json.dumps(dict(data), default=str)),
    }
    for key, value in data.items():
        if key not in ("summary", "description"):
            annotations[str(key)] = (
                value if isinstance(value, str) else json.dumps(value, default=str)
            )
    return {
        "labels": labels,
        "annotations": annotations,
        "startsAt": _iso(now),
        # An alert from code is an event: it resolves by itself unless raised again.
        "endsAt": _iso(now + ends_in),
        "generatorURL": "",
    }


def alert(
    name: str,
    data: Mapping[str, Any] | None = None,
    severity: str | None = "warning",
    alert_channels: Sequence[str] | None = None,
    *,
    logger: StructuredLogger | None = None,
) -> bool:
    """Raise an alert. Returns True when it was queued for Alertmanager.

    ``data`` is redacted like log data. ``data["severity"]`` (as in the seed) is
    used when ``severity`` is not given.
    """
    if not name or not isinstance(name, str):
        raise ValueError(f"alert name={name!r} is invalid: expected a non-empty string")
    runtime = _runtime.current()
    # Redacted before anything reads it (it may be a dataclass or a model); the name and
    # channels are free text that reach labels, the span event and the record.
    redactor = runtime.redactor
    payload_data = redactor.mapping(data) if data is not None else {}
    chosen = severity if severity is not None else str(payload_data.pop("severity", "warning"))
    payload_data.pop("severity", None)
    if chosen not in SEVERITIES:
        raise ValueError(f"severity={chosen!r} is invalid: expected one of {', '.join(SEVERITIES)}")
    name = redactor.text(name)
    channels = [redactor.text(str(c)) for c in alert_channels or ()]
    safe = payload_data
    from otel_tdd.structured_logging import StructuredLogger

    span = trace.get_current_span()
    if span.is_recording():
        span.add_event("alert." + name, {"severity": chosen, "channels": channels})
    log = logger or StructuredLogger("otel_tdd.alerting")
    level = logging.CRITICAL if chosen == "critical" else logging.WARNING
    block = {"name": name, "severity": chosen, "channels": channels}
    log.log(level, f"alert: {name}", safe, alert=block)
    client = _client()
    if client is None:
        return False
    return client.submit(build_payload(name, safe, chosen, channels, _service_name(runtime)))


def _service_name(runtime: _runtime.Runtime) -> str:
    if runtime.tracer_provider is not None:
        return str(runtime.tracer_provider.resource.attributes.get("service.name", "unknown"))
    return runtime.settings.service_name or "unknown"


def on_threshold_exceeded(
    operation: str, performance: Mapping[str, Any], logger: StructuredLogger | None
) -> None:
    """The hook performance_context uses: an alert when Alertmanager is configured."""
    if _runtime.current().settings.alertmanager_url is None:
        return
    alert(
        "PerformanceThresholdExceeded",
        {
            "operation": operation,
            **performance,
            "summary": f"{operation} slower than {performance.get('alert_threshold_ms')} ms",
        },
        severity="warning",
        logger=logger,
    )
