"""``alert()``: alerts from code, into the same Alertmanager routing tree as the Prometheus rules.

One background thread posts to Alertmanager's API v2 from a bounded queue, so
``alert()`` never blocks on the network; failures are counted and logged once per
outage. Without ``OTEL_TDD_ALERTMANAGER_URL`` an alert is still a record, a span
event and a metric (docs/alerting.md).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import queue
import socket
import threading
import time
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace

from otel_tdd import _runtime
from otel_tdd.config import without_password
from otel_tdd.emit import Emitter
from otel_tdd.logs.safe import json_safe
from otel_tdd.metrics import catalog

__all__ = [
    "REASONS",
    "SEVERITIES",
    "AlertmanagerClient",
    "alert",
    "annotation_name",
    "on_threshold_exceeded",
]

SEVERITIES = ("info", "warning", "critical")
_internal = logging.getLogger("otel_tdd.alerting")
_default_logger = Emitter("otel_tdd.alerting")


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


# Why an alert was not delivered: the `reason` of tdd_alerts_failed_total.
REASONS = (
    "unreachable",  # no connection (refused, reset, DNS)
    "timeout",  # no complete answer within the client's timeout
    "bad_response",  # an answer that is not HTTP (garbage, more than 100 headers)
    "rejected",  # 4xx: Alertmanager refused this alert (its body says why); retrying won't help
    "server_error",  # 5xx
    "queue_full",  # the bounded queue was full when alert() was called
    "shutdown",  # still queued (or in flight) when the process shut down
    "error",  # anything else the sender hit; the sender thread goes on
)
# Bytes of a reply we read at most: Alertmanager's answers are a few hundred bytes.
_MAX_REPLY_BYTES = 64 * 1024
_LOGGED_BODY_CHARS = 500


class _DeliveryError(Exception):
    """A post that did not deliver: ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _dedup_key(payload: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(payload["labels"].items()))


def _refuse_credentials(url: str) -> str:
    """urllib and http.client ignore user:password in a URL; refuse it, never echo the password."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"Alertmanager URL {without_password(url)!r} is invalid: expected http(s)://host[:port]"
        )
    # A password with / or # in it ends urlsplit's netloc early: no username seen, so the
    # masked form differing from the URL is what tells.
    if parts.username is not None or parts.password is not None or without_password(url) != url:
        raise ValueError(
            f"Alertmanager URL {without_password(url)!r} carries credentials, which are not "
            "sent: put Alertmanager behind a proxy that authenticates, and give its URL "
            "without user:password"
        )
    return url


class AlertmanagerClient:
    """Posts alerts to Alertmanager API v2 from a background thread, never blocking the caller.

    Every alert ends in exactly one of ``tdd_alerts_sent_total`` or
    ``tdd_alerts_failed_total{reason}`` (:data:`REASONS`). ``timeout_s`` bounds a
    whole post (connect, send, the complete reply), not each socket read, so a
    server that trickles its reply holds the sender no longer than that.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 2.0,
        queue_size: int = 256,
        dedup_window_s: float = 300.0,
    ) -> None:
        self.url = _refuse_credentials(base_url.rstrip("/")) + "/api/v2/alerts"
        self.timeout_s = timeout_s
        self.dedup_window_s = dedup_window_s
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(queue_size)
        self._last_sent: dict[tuple[tuple[str, str], ...], float] = {}
        self._failing: str | None = None  # the reason last logged, until a post succeeds
        self._closing = False
        self._in_flight: http.client.HTTPConnection | None = None
        self._in_flight_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="otel-tdd-alertmanager", daemon=True)
        self._thread.start()

    def submit(self, payload: dict[str, Any]) -> bool:
        """Queue one alert; False when it was a duplicate or could not be queued (counted)."""
        if self._closing:
            catalog.alerts_failed.add(1, {"reason": "shutdown"})
            return False
        key = _dedup_key(payload)
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
                self._deliver(payload)
            except BaseException:  # _deliver counts what it can; the sender must outlive it
                pass
            finally:
                self._queue.task_done()

    def _deliver(self, payload: dict[str, Any]) -> None:
        try:
            if self._closing:
                raise _DeliveryError("shutdown", "the process is shutting down")
            self._post(payload)
        except Exception as error:
            failure = (
                error
                if isinstance(error, _DeliveryError)
                else _DeliveryError("error", f"{type(error).__name__}: {error}")
            )
            if self._closing and failure.reason in ("timeout", "unreachable"):
                failure = _DeliveryError("shutdown", "abandoned at shutdown")
            catalog.alerts_failed.add(1, {"reason": failure.reason})
            # Not delivered, so not a duplicate: the next repeat is posted again.
            self._last_sent.pop(_dedup_key(payload), None)
            self._log_failure(failure)
            return
        catalog.alerts_sent.add(1)
        if self._failing is not None:
            self._failing = None
            _internal.info("Alertmanager at %s answers again", self.url)

    def _log_failure(self, failure: _DeliveryError) -> None:
        """One record per kind of failure in a row; a success resets it."""
        if failure.reason in (self._failing, "shutdown"):
            return
        self._failing = failure.reason
        if failure.reason == "unreachable":
            _internal.warning(
                "Alertmanager at %s is unreachable (%s); alerts are counted in "
                "tdd_alerts_failed_total until it answers again",
                self.url,
                failure.detail,
            )
        else:
            _internal.warning(
                "Alertmanager at %s did not take an alert (reason=%s: %s); such alerts are "
                "counted in tdd_alerts_failed_total{reason=%r}",
                self.url,
                failure.reason,
                failure.detail,
                failure.reason,
            )

    def _post(self, payload: dict[str, Any]) -> None:
        """One POST, bounded as a whole by ``timeout_s``; raises :class:`_DeliveryError`."""
        body = json.dumps([payload]).encode()
        parts = urlsplit(self.url)
        connection_class = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_class(parts.netloc, timeout=self.timeout_s)
        # A per-read timeout restarts at every byte: a timer closes the socket at the
        # deadline instead, which ends whatever read or write is blocked on it.
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            self._abort(connection)

        timer = threading.Timer(self.timeout_s, expire)
        timer.daemon = True
        with self._in_flight_lock:
            self._in_flight = connection
        timer.start()
        try:
            connection.request(
                "POST", parts.path, body=body, headers={"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            reply = response.read(_MAX_REPLY_BYTES)
            status = response.status
        except Exception as error:
            if expired.is_set():
                raise _DeliveryError("timeout", self._late()) from None
            if isinstance(error, http.client.HTTPException) and not isinstance(
                error, http.client.RemoteDisconnected
            ):
                detail = f"{type(error).__name__}: {error}"[:200]
                raise _DeliveryError("bad_response", detail) from None
            if isinstance(error, OSError):
                raise _DeliveryError("unreachable", f"{type(error).__name__}: {error}") from None
            raise
        finally:
            timer.cancel()
            with self._in_flight_lock:
                self._in_flight = None
            connection.close()
        if expired.is_set():  # a reply cut short by the deadline can parse as a whole one
            raise _DeliveryError("timeout", self._late())
        if 200 <= status < 300:
            return
        text = reply.decode("utf-8", "replace").strip()[:_LOGGED_BODY_CHARS]
        if 400 <= status < 500:
            raise _DeliveryError("rejected", f"HTTP {status}: {text}")
        raise _DeliveryError("server_error", f"HTTP {status}: {text}")

    def _late(self) -> str:
        return f"no complete reply within {self.timeout_s:g}s"

    def _drop_queued(self) -> None:
        while True:
            try:
                payload = self._queue.get_nowait()
            except queue.Empty:
                return
            if payload is not None:
                catalog.alerts_failed.add(1, {"reason": "shutdown"})
            self._queue.task_done()

    @staticmethod
    def _abort(connection: http.client.HTTPConnection) -> None:
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until the queue is drained (bounded)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def close(self, timeout_s: float = 5.0) -> bool:
        """Deliver what is queued for at most ``timeout_s``, then give up on the rest.

        Whatever is still queued or in flight then is counted as
        ``tdd_alerts_failed_total{reason="shutdown"}``. True when nothing was lost.
        """
        drained = self.flush(max(0.0, timeout_s))
        self._closing = True
        if not drained:
            with self._in_flight_lock:
                if self._in_flight is not None:
                    self._abort(self._in_flight)
            # The sender now fails each queued alert at once (counted as "shutdown");
            # what it has not reached by then is counted here.
            self.flush(0.2)
            self._drop_queued()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(0.2)
        return drained


def _client() -> AlertmanagerClient | None:
    runtime = _runtime.current()
    url = runtime.settings.alertmanager_url
    if url is None:
        return None
    client = runtime.alertmanager
    if client is None:
        if runtime.closed:
            # After shutdown() nothing restarts: the alert is a log record, counted as lost.
            catalog.alerts_failed.add(1, {"reason": "shutdown"})
            return None
        client = AlertmanagerClient(url)
        runtime.alertmanager = client
        # shutdown() gives it a share of its own timeout (see lifecycle.shutdown).
        runtime.drains.append(client.close)
    return client


_RESERVED_ANNOTATIONS = ("summary", "description")


def annotation_name(key: str) -> str:
    """``key`` as a valid Alertmanager label name (``[a-zA-Z_][a-zA-Z0-9_]*``).

    Alertmanager 0.25 refuses a whole alert (400) when one annotation name is not
    a valid label name. Deterministic: accents are dropped (``clé`` -> ``cle``),
    every other character outside ``[a-zA-Z0-9_]`` becomes ``_`` (``user-id`` ->
    ``user_id``, ``http.status`` -> ``http_status``), a leading digit gets a
    ``_`` in front (``1abc`` -> ``_1abc``) and the empty key is ``_``.
    """
    out = []
    for char in key:
        if char.isascii():
            out.append(char if char.isalnum() or char == "_" else "_")
            continue
        ascii_part = "".join(
            c for c in unicodedata.normalize("NFKD", char) if c.isascii() and c.isalnum()
        )
        out.append(ascii_part or "_")
    name = "".join(out)
    if not name or name[0].isdigit():
        name = "_" + name
    return name


def annotation_names(data: Mapping[str, Any]) -> dict[str, str]:
    """Each key of ``data`` -> its annotation name, unique and independent of dict order.

    Valid names are kept; the others are sanitised by :func:`annotation_name` in
    sorted order, and one that would collide with a name already taken (or with
    ``summary``/``description``) gets ``_2``, ``_3``... appended.
    """
    taken = set(_RESERVED_ANNOTATIONS)
    names: dict[str, str] = {}
    for key in data:
        if annotation_name(key) == key and key not in taken:
            names[key] = key
            taken.add(key)
    for key in sorted(k for k in data if k not in names):
        base = annotation_name(key)
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        names[key] = name
        taken.add(name)
    return names


def _channel_items(channels: Sequence[str]) -> list[str]:
    """Each channel once, stripped, in order: the routing tree matches whole comma-separated
    items (``channel=~"(.*,)?slack(,.*)?"``), so ``" slack"`` must arrive as ``slack``."""
    items: list[str] = []
    for channel in channels:
        for item in str(channel).split(","):
            name = item.strip()
            if name and name not in items:
                items.append(name)
    return items


def _json_text(value: Any) -> str:
    """``value`` as JSON text. alert() must not raise into the app: what ``json.dumps``
    refuses (an int of 5000 digits, a cycle) goes through the log pipeline's sanitiser."""
    try:
        return json.dumps(value, default=str)
    except (ValueError, TypeError, RecursionError):
        return json.dumps(json_safe(value), default=str)


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
    items = _channel_items(channels)
    if items:
        labels["channel"] = ",".join(items)
    summary = data.get("summary") or name.replace("_", " ")
    description = data.get("description") or {str(k): v for k, v in data.items()}
    annotations = {
        "summary": summary if isinstance(summary, str) else _json_text(summary),
        "description": description if isinstance(description, str) else _json_text(description),
    }
    extra = {str(k): v for k, v in data.items() if k not in ("summary", "description")}
    for key, value in annotation_names(extra).items():
        annotations[value] = extra[key] if isinstance(extra[key], str) else _json_text(extra[key])
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
    logger: Emitter | None = None,
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
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event("alert." + name, {"severity": chosen, "channels": channels})
    log = logger or _default_logger
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
    operation: str, performance: Mapping[str, Any], logger: Emitter | None
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
