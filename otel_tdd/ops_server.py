"""The ops server: ``/health``, ``/health/live``, ``/health/ready`` and ``/metrics`` on a side port.

Why the standard library's ``ThreadingHTTPServer`` and not a framework: the job
is four read-only GET routes, the package must not pull a web framework into
every app it instruments, and the app's own server (Streamlit's Tornado, a Flask
app) should not have to be touched to get probes. One accept thread, one daemon
thread per connection, bounded by ``max_connections``.

It never crashes the app: a malformed request gets the stdlib's 400, an error in
a handler gets a 500 and a log record, a client that goes away is ignored, and
every thread is a daemon. It binds 127.0.0.1 unless told otherwise
(``OTEL_TDD_OPS_HOST=0.0.0.0`` in a container, so the kubelet can reach it).

``/metrics`` is :func:`otel_tdd.sdk.render_prometheus`: the SDK's Prometheus
reader over the same MeterProvider as everything else, no second registry.
Probe requests make no spans and no log records: a kubelet probing every few
seconds would otherwise be most of an app's telemetry.
"""

from __future__ import annotations

import errno
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from otel_tdd.health_check import HealthMonitor, HealthResponse, default_monitor

__all__ = ["METRICS_CONTENT_TYPE", "OpsServer", "OpsServerError", "start_ops_server"]

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
JSON_CONTENT_TYPE = "application/json"
DEFAULT_MAX_CONNECTIONS = 64
# Seconds a connection may sit idle (or trickle a request) before its thread gives up.
REQUEST_TIMEOUT_S = 10.0
_BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 21\r\nConnection: close\r\n\r\nops server too busy\r\n"
)


class OpsServerError(OSError):
    """The ops server cannot listen; the message names the address and the knob to change."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client never keeps the app from exiting
    block_on_close = False
    request_queue_size = 128  # the kernel backlog absorbs bursts of probes

    def __init__(self, address: tuple[str, int], monitor: HealthMonitor | None, limit: int):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.monitor = monitor
        self.slots = threading.BoundedSemaphore(limit)
        self.errors_logged: set[str] = set()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Shed load instead of growing threads without bound: the excess connection gets
        # a 503 at once from the accept thread (a tiny write into an empty socket buffer).
        if not self.slots.acquire(blocking=False):
            try:
                request.settimeout(0.5)
                request.sendall(_BUSY_RESPONSE)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """The stdlib prints a traceback to stderr; we log each kind once and carry on."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            return  # the client went away or stalled: nothing to report
        _log_once(self, "Ops server request failed", error)


def _log_once(server: _Server, message: str, error: BaseException | None) -> None:
    kind = type(error).__name__
    if kind in server.errors_logged:
        return
    server.errors_logged.add(kind)
    try:
        from otel_tdd.structured_logging import StructuredLogger

        StructuredLogger("otel_tdd.ops_server").error(
            message, {"error_type": kind, "error": str(error)}
        )
    except Exception:
        pass


_PROBES = {
    "/health": "get_detailed_status",
    "/health/live": "get_liveness_status",
    "/health/ready": "get_readiness_status",
}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive: probes and scrapers reuse connections
    timeout = REQUEST_TIMEOUT_S
    # Headers and body leave in one write (flushed after each request), and without Nagle:
    # a small second write behind an unacknowledged first one waits for the peer's delayed
    # ACK, 40 ms per request on Linux.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return "otel-tdd-ops"  # no Python version on the wire

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: probes every few seconds would drown the app's own records."""

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def _respond(self, send_body: bool) -> None:
        try:
            status, content_type, body = self._route(self.path.split("?", 1)[0])
        except Exception as error:
            _log_once(self.server, "Ops server handler failed", error)
            status, content_type = HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8"
            body = f"internal error: {type(error).__name__}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _monitor(self) -> HealthMonitor:
        # Resolved per request, so set_default_monitor() after start still takes effect.
        return self.server.monitor or default_monitor()

    def _route(self, path: str) -> tuple[int, str, bytes]:
        if path == "/metrics":
            from otel_tdd.sdk import render_prometheus

            # Refresh the health gauges (cached, so at most one run per TTL) so a
            # Prometheus scrape sees current tdd_health_check_status without a probe.
            self._monitor().refresh()
            return HTTPStatus.OK, METRICS_CONTENT_TYPE, render_prometheus()
        probe = _PROBES.get(path)
        if probe is None:
            return HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n"
        response: HealthResponse = getattr(self._monitor(), probe)()
        return response.status_code, JSON_CONTENT_TYPE, response.json_bytes()


class OpsServer:
    """A running ops server. ``stop()`` is idempotent; also a context manager."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        host, port = server.server_address[:2]
        self.host = str(host)
        self.port = int(port)
        url_host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{url_host}:{self.port}"
        self._stopped = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"otel-tdd-ops-server-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop accepting, close the socket, wait for the accept thread (not for clients)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return not self._stopped and self._thread.is_alive()

    def __enter__(self) -> OpsServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"OpsServer(url={self.url!r}, running={self.running})"


def start_ops_server(
    host: str = "127.0.0.1",
    port: int = 0,
    monitor: HealthMonitor | None = None,
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> OpsServer:
    """Listen on ``host:port`` (0: any free port) and serve in a daemon thread.

    ``monitor`` answers the /health endpoints; None: :func:`default_monitor`, looked
    up per request. Raises :class:`OpsServerError` (an ``OSError``, same errno) when
    the address cannot be bound, naming it and ``OTEL_TDD_OPS_PORT``.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"ops server port {port!r} is invalid: expected 0 to 65535")
    if isinstance(max_connections, bool) or not isinstance(max_connections, int):
        raise TypeError(f"max_connections={max_connections!r} is invalid: expected an int >= 1")
    if max_connections < 1:
        raise ValueError(f"max_connections={max_connections!r} is invalid: expected an int >= 1")
    if monitor is not None and not isinstance(monitor, HealthMonitor):
        raise TypeError(f"monitor={monitor!r} is not a HealthMonitor")
    try:
        server = _Server((host, port), monitor, max_connections)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            reason = f"port {port} is already in use"
        elif error.errno == errno.EACCES:
            reason = f"permission denied for port {port}"
        else:
            reason = error.strerror or str(error)
        raise OpsServerError(
            error.errno,
            f"ops server cannot listen on {host}:{port}: {reason}; set OTEL_TDD_OPS_PORT "
            "(or configure(ops_port=...)) to a free port, or 0 for any free port",
        ) from error
    return OpsServer(server)
