"""Local stand-ins for the services a user pays for: a webhook endpoint, Slack, an SMTP relay.

They are the only stand-ins in the alerting tests (DESIGN.md, principle 2): Prometheus
and Alertmanager are the real ones, and Alertmanager's own notifiers talk to these
sinks exactly as they would to the outside services:

* :class:`HttpSink` ``kind="webhook"``: what a chat-ops bot or an automation endpoint
  sees from a ``webhook_configs`` receiver (Alertmanager's JSON, version 4, with its
  ``Authorization`` header).
* :class:`HttpSink` ``kind="slack"``: shaped like a Slack incoming webhook: POST of a
  JSON object with ``text`` or ``attachments``, answered ``200 ok``; anything else
  is answered ``400 invalid_payload``, as Slack does.
* :class:`SmtpSink`: an SMTP server (aiosmtpd; Python 3.11 has no smtpd) that keeps
  every message it accepts, parsed. No STARTTLS and no AUTH are offered: the local
  stack renders ``smtp_require_tls: false`` for a local smarthost.

Everything binds 127.0.0.1 on a free port and stops in ``stop()``; :func:`running_sinks`
starts the three together for a fixture.
"""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from otel_tdd.stack import process
from otel_tdd.stack.local import Receivers

T = TypeVar("T")
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class HttpRequest:
    """One POST a sink received."""

    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Mail:
    """One message the SMTP sink accepted: envelope and parsed content."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    subject: str
    headers: dict[str, str]
    text: str  # every text/* part, decoded, joined
    received_at: float


class _Recorder:
    """A thread-safe list with a bounded wait, shared by the sinks."""

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._changed = threading.Condition()

    def add(self, item: Any) -> None:
        with self._changed:
            self._items.append(item)
            self._changed.notify_all()

    def items(self) -> list[Any]:
        with self._changed:
            return list(self._items)

    def wait_for(self, predicate: Callable[[list[Any]], T], timeout_s: float) -> T | None:
        """``predicate(items)`` once it is truthy, else None after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                found = predicate(list(self._items))
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(min(left, 0.5))


class HttpSink:
    """A loopback HTTP server that records every POST (``kind``: "webhook" or "slack")."""

    def __init__(self, kind: str, path: str) -> None:
        if kind not in ("webhook", "slack"):
            raise ValueError(f"kind={kind!r}: expected 'webhook' or 'slack'")
        self.kind = kind
        self.path = path
        self._recorder = _Recorder()
        self.rejected: list[str] = []  # why a request was refused (a test can assert none)
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, answer = sink._accept(self.path, dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"{kind}-sink", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._server.server_address[1]}{self.path}"

    def _accept(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        if path != self.path:
            self.rejected.append(f"POST {path}: not {self.path}")
            return 404, b"not found"
        try:
            payload = json.loads(body)
        except ValueError:
            self.rejected.append(f"POST {path}: body is not JSON: {body[:200]!r}")
            return 400, b"invalid_payload"
        if self.kind == "slack" and not (
            isinstance(payload, dict) and (payload.get("text") or payload.get("attachments"))
        ):
            self.rejected.append(f"POST {path}: no text or attachments: {payload!r}")
            return 400, b"invalid_payload"
        self._recorder.add(HttpRequest(path, headers, body, time.monotonic()))
        return 200, b"ok"

    def requests(self) -> list[HttpRequest]:
        return self._recorder.items()

    def payloads(self) -> list[Any]:
        return [request.json for request in self._recorder.items()]

    def wait_for(self, predicate: Callable[[list[HttpRequest]], T], timeout_s: float) -> T | None:
        return self._recorder.wait_for(predicate, timeout_s)

    def start(self) -> HttpSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()


class _MailHandler:
    """aiosmtpd handler: parse and keep every message."""

    def __init__(self, recorder: _Recorder) -> None:
        self._recorder = recorder

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        parts = []
        for part in message.walk():
            if part.get_content_maintype() == "text":
                parts.append(str(part.get_content()))
        self._recorder.add(
            Mail(
                mail_from=str(envelope.mail_from),
                rcpt_tos=tuple(str(r) for r in envelope.rcpt_tos),
                subject=str(message.get("Subject", "")),
                headers={key: str(value) for key, value in message.items()},
                text="\n".join(parts),
                received_at=time.monotonic(),
            )
        )
        return "250 Message accepted for delivery"


class SmtpSink:
    """An SMTP server on a free loopback port that keeps every message."""

    def __init__(self) -> None:
        self._recorder = _Recorder()
        (self.port,) = process.free_ports(1)
        self._controller = Controller(
            _MailHandler(self._recorder), hostname=LOOPBACK, port=self.port, ready_timeout=10
        )

    @property
    def smarthost(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def mails(self) -> list[Mail]:
        return self._recorder.items()

    def wait_for(self, predicate: Callable[[list[Mail]], T], timeout_s: float) -> T | None:
        return self._recorder.wait_for(predicate, timeout_s)

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


@dataclass
class Sinks:
    webhook: HttpSink
    slack: HttpSink
    smtp: SmtpSink
    started: list[Any] = field(default_factory=list)

    def receivers(self) -> Receivers:
        """The local stack's receiver overrides that aim Alertmanager at these sinks."""
        return Receivers(
            webhook_url=self.webhook.url,
            slack_api_url=self.slack.url,
            smtp_smarthost=self.smtp.smarthost,
        )

    def summary(self) -> str:
        """What each sink got so far, for a failure message."""
        lines = ["--- webhook sink ---"]
        lines += [json.dumps(_brief_webhook(p)) for p in self.webhook.payloads()]
        lines += ["--- slack sink ---"]
        lines += [
            json.dumps({"channel": p.get("channel"), "titles": slack_titles(p)})
            for p in self.slack.payloads()
        ]
        lines += ["--- smtp sink ---"]
        lines += [f"{m.rcpt_tos} {m.subject!r}" for m in self.smtp.mails()]
        rejected = self.webhook.rejected + self.slack.rejected
        if rejected:
            lines += ["--- rejected ---", *rejected]
        return "\n".join(lines)


def slack_titles(payload: dict[str, Any]) -> list[str]:
    """The attachment titles of one Slack message (Alertmanager puts ``title`` there)."""
    return [str(a.get("title", "")) for a in payload.get("attachments") or []]


def _brief_webhook(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "receiver": payload.get("receiver"),
        "status": payload.get("status"),
        "alerts": [
            (a.get("labels", {}).get("alertname"), a.get("status"))
            for a in payload.get("alerts", [])
        ],
    }


@contextmanager
def running_sinks() -> Iterator[Sinks]:
    """The webhook, Slack and SMTP sinks, started together and always stopped."""
    sinks = Sinks(
        webhook=HttpSink("webhook", "/alertmanager"),
        slack=HttpSink("slack", "/services/T000/B000/local-sink"),
        smtp=SmtpSink(),
    )
    try:
        for sink in (sinks.webhook, sinks.slack, sinks.smtp):
            sink.start()
            sinks.started.append(sink)
        yield sinks
    finally:
        for sink in reversed(sinks.started):
            sink.stop()
