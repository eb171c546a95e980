"""How the query commands reach the stores: URLs, bounded HTTP, one error type.

Plain ``urllib`` with bounded timeouts: three small read-only HTTP APIs do not
justify a client library each. Every failure is a :class:`StoreQueryError`
that names the store, the URL and the fix (how to start the store, which flag).
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DEFAULT_URLS",
    "ENV_JAEGER_URL",
    "ENV_LOGS_URL",
    "ENV_PROMETHEUS_URL",
    "TIMEOUT",
    "HTTPStatusError",
    "StoreQueryError",
    "default_url",
    "open_url",
    "parse_json",
]

ENV_JAEGER_URL = "OTEL_TDD_JAEGER_URL"
ENV_LOGS_URL = "OTEL_TDD_LOGS_URL"
ENV_PROMETHEUS_URL = "OTEL_TDD_PROMETHEUS_URL"
# The ports compose publishes on 127.0.0.1 (compose/docker-compose.yml).
DEFAULT_URLS: Mapping[str, str] = {
    ENV_JAEGER_URL: "http://127.0.0.1:16686",
    ENV_LOGS_URL: "http://127.0.0.1:9428",
    ENV_PROMETHEUS_URL: "http://127.0.0.1:9090",
}
TIMEOUT = 10.0
# How to start each store: the local stack runs all three; compose runs them too.
_START_STORES = (
    "start the local stack with `otel-tdd stack up` (or the compose stores: `docker compose "
    "-f compose/docker-compose.yml up -d jaeger victoria-logs`), or pass {flag} URL or set {env}"
)
_UP_HINTS: Mapping[str, str] = {
    "Jaeger": _START_STORES.format(flag="--jaeger", env=ENV_JAEGER_URL),
    "VictoriaLogs": _START_STORES.format(flag="--logs", env=ENV_LOGS_URL),
    "Prometheus": "is the stack up? start it with `otel-tdd stack up`, or pass --prometheus "
    f"URL or set {ENV_PROMETHEUS_URL}",
}
_EXAMPLES = {
    "Jaeger": DEFAULT_URLS[ENV_JAEGER_URL],
    "VictoriaLogs": DEFAULT_URLS[ENV_LOGS_URL],
    "Prometheus": DEFAULT_URLS[ENV_PROMETHEUS_URL],
}


class StoreQueryError(Exception):
    """A store could not answer; the message names the store, the URL and the fix."""


def default_url(env_name: str) -> str:
    """The store URL from ``env_name`` if set, else the compose/stack default."""
    return (os.environ.get(env_name) or DEFAULT_URLS[env_name]).rstrip("/")


class HTTPStatusError(StoreQueryError):
    """The store answered with an error status (``status``: 404, 400...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def open_url(url: str, store: str, data: bytes | None = None, timeout: float = TIMEOUT) -> bytes:
    """The body of a GET (a POST with ``data``) to ``store``; any failure a StoreQueryError."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        # urllib would also open file:, ftp: or data: URLs: a store is an HTTP server.
        example = _EXAMPLES.get(store, "http://127.0.0.1:PORT")
        raise StoreQueryError(f"bad {store} URL {url!r}: use http:// or https://, e.g. {example}")
    request = urllib.request.Request(url, data=data, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace").strip()[:500]
        raise HTTPStatusError(exc.code, f"{store} at {url} answered {exc.code}: {detail}") from exc
    except http.client.HTTPException as exc:  # IncompleteRead, a bad status line...
        raise StoreQueryError(
            f"{store} at {url} sent a broken answer ({type(exc).__name__}: {exc}); try again"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        hint = _UP_HINTS.get(store, "pass the store's URL")
        raise StoreQueryError(f"cannot reach {store} at {url} ({reason}); {hint}") from exc


def parse_json(body: bytes, store: str, url: str) -> Any:
    """``body`` as JSON, or a StoreQueryError naming the store and the URL."""
    try:
        return json.loads(body)
    except ValueError as exc:
        raise StoreQueryError(f"{store} at {url} sent something that is not JSON: {exc}") from exc
