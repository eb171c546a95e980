"""The ops server: ``/health``, ``/health/live``, ``/health/ready`` and ``/metrics`` on a side port.

Standard library only: one selector thread reads request heads without blocking,
whole requests go to a bounded set of handler threads, so slow clients cost a
socket, not a thread. Probes make no spans and no records. Why and how:
docs/health.md, "The ops server".
"""

from __future__ import annotations

import collections
import contextlib
import errno
import io
import logging
import os
import selectors
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

from prometheus_client import REGISTRY, generate_latest

from otel_tdd import _runtime
from otel_tdd._util import ReportOnce
from otel_tdd.health_check import HealthMonitor, HealthResponse, default_monitor

__all__ = [
    "METRICS_CONTENT_TYPE",
    "OpsServer",
    "OpsServerError",
    "render_prometheus",
    "start_ops_server",
]

_log = logging.getLogger(__name__)

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
JSON_CONTENT_TYPE = "application/json"
# Requests handled at once (one thread each); beyond this a request gets 503 at once.
DEFAULT_MAX_CONNECTIONS = 64
# Sockets held open at once (slow, idle or keep-alive clients cost a socket, not a thread).
MAX_OPEN_CONNECTIONS = 512
# A request head must arrive whole within this many seconds of its first byte.
HEAD_TIMEOUT_S = 5.0
# Seconds a keep-alive connection may sit idle, and the bound on each send() of an
# answer (per send, not the whole answer: a slow reader holds its handler thread longer).
REQUEST_TIMEOUT_S = 10.0
# How long a handler thread waits for the next request on a keep-alive connection
# before handing it back to the selector (a client sending at once skips a round trip).
KEEP_ALIVE_IN_THREAD_S = 0.1
# Beyond this a head is not a probe: 431 (the stdlib answers 414 for a long line first).
MAX_HEAD_BYTES = 96 * 1024
_BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 21\r\nConnection: close\r\n\r\nops server too busy\r\n"
)
_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
    b"Connection: close\r\n\r\n"
)


class OpsServerError(OSError):
    """The ops server cannot listen; the message names the address and the knob to change."""


class _Connection:
    """A client socket in the selector: the bytes of its request head so far."""

    __slots__ = ("address", "buffer", "sock", "started", "waiting")

    def __init__(self, sock: socket.socket, address: Any, buffer: bytes = b"") -> None:
        self.sock = sock
        self.address = address
        self.buffer = bytearray(buffer)
        self.waiting = time.monotonic()  # since when we wait for this client
        self.started: float | None = time.monotonic() if buffer else None  # first head byte


class _Server:
    """The selector loop: accepts, reads heads, hands whole requests to handler threads."""

    def __init__(self, address: tuple[str, int], monitor: HealthMonitor | None, limit: int) -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.listener = socket.create_server(address, family=family, backlog=128)
        self.listener.setblocking(False)
        self.server_address = self.listener.getsockname()
        self.monitor = monitor
        self.slots = threading.BoundedSemaphore(limit)
        self.errors_logged = ReportOnce()
        self.pid = os.getpid()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.listener, selectors.EVENT_READ, None)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._returned: collections.deque[_Connection] = collections.deque()
        self._open: dict[socket.socket, _Connection] = {}
        self._stopping = False

    # -- the selector thread ----------------------------------------------------------------

    def serve_forever(self) -> None:
        try:
            while not self._stopping:
                for key, _events in self._selector.select(timeout=0.25):
                    if key.data is None:
                        self._accept()
                    elif key.data == "wake":
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
                    else:
                        self._read(key.data)
                self._take_returned()
                self._expire()
        finally:
            self._close_all()

    def _accept(self) -> None:
        for _ in range(64):  # a burst, without starving the reads
            try:
                sock, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # EMFILE and friends: the kernel backlog keeps the client waiting
            sock.setblocking(False)
            if len(self._open) >= MAX_OPEN_CONNECTIONS:
                self._evict_oldest()
            self._watch(_Connection(sock, address))

    def _watch(self, conn: _Connection) -> None:
        self._open[conn.sock] = conn
        try:
            self._selector.register(conn.sock, selectors.EVENT_READ, conn)
        except (OSError, ValueError):
            self._drop(conn)

    def _evict_oldest(self) -> None:
        oldest = min(self._open.values(), key=lambda c: c.started or c.waiting)
        self._drop(oldest)

    def _read(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        if conn.started is None:
            conn.started = time.monotonic()
        conn.buffer += data
        self._dispatch_if_whole(conn)

    def _dispatch_if_whole(self, conn: _Connection) -> None:
        if _whole(conn.buffer):
            self._unwatch(conn)
            self._dispatch(conn)
        elif len(conn.buffer) > MAX_HEAD_BYTES:
            self._unwatch(conn)
            _send_and_close(conn.sock, _HEAD_TOO_LARGE)

    def _take_returned(self) -> None:
        while self._returned:
            conn = self._returned.popleft()
            if self._stopping:
                _close(conn.sock)
                continue
            self._watch(conn)
            if conn.buffer:  # a pipelined request arrived with the last one
                self._dispatch_if_whole(conn)

    def _expire(self) -> None:
        now = time.monotonic()
        for conn in list(self._open.values()):
            if conn.started is not None and now - conn.started > HEAD_TIMEOUT_S:
                self._drop(conn)  # trickling its head: gone
            elif conn.started is None and now - conn.waiting > REQUEST_TIMEOUT_S:
                self._drop(conn)  # idle keep-alive

    def _unwatch(self, conn: _Connection) -> None:
        self._open.pop(conn.sock, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(conn.sock)

    def _drop(self, conn: _Connection) -> None:
        self._unwatch(conn)
        _close(conn.sock)

    def _close_all(self) -> None:
        for conn in list(self._open.values()):
            self._drop(conn)
        while self._returned:
            _close(self._returned.popleft().sock)
        with contextlib.suppress(OSError):
            self._selector.close()

    # -- handler threads --------------------------------------------------------------------

    def _dispatch(self, conn: _Connection) -> None:
        # Shed load instead of growing threads without bound: 503 at once.
        if not self.slots.acquire(blocking=False):
            _send_and_close(conn.sock, _BUSY_RESPONSE)
            return
        try:
            threading.Thread(
                target=self._handle, args=(conn,), name="otel-tdd-ops-request", daemon=True
            ).start()
        except RuntimeError:  # no thread to be had (interpreter exiting, limits)
            self.slots.release()
            _send_and_close(conn.sock, _BUSY_RESPONSE)

    def _handle(self, conn: _Connection) -> None:
        """Answer the request, and the next ones on this connection while they come promptly.

        A keep-alive client that sends its next request at once (a scraper, a load
        balancer) is served by this thread without a round trip through the selector;
        one that pauses longer than ``KEEP_ALIVE_IN_THREAD_S``, or sends half a head,
        goes back to the selector, so no thread ever waits on a slow client for long.
        """
        sock, head, back = conn.sock, bytes(conn.buffer), False
        try:
            while not self._stopping:
                sock.setblocking(True)
                sock.settimeout(REQUEST_TIMEOUT_S)
                handler = _Handler(sock, conn.address, self, head)
                if handler.close_connection:
                    return
                head = handler.leftover
                if not _whole(head):
                    sock.settimeout(KEEP_ALIVE_IN_THREAD_S)
                    try:
                        data = sock.recv(65536)
                    except TimeoutError:
                        data = None
                    if data == b"":
                        return  # the client closed
                    head += data or b""
                if not _whole(head):
                    back = True
                    self._returned.append(_Connection(sock, conn.address, head))
                    self.wake()
                    return
        except (ConnectionError, TimeoutError):
            pass  # the client went away or stalled: nothing to report
        except Exception as error:
            _log_once(self, "Ops server request failed", error)
        finally:
            self.slots.release()
            if not back:
                _close(sock)

    # -- control ----------------------------------------------------------------------------

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def stop(self) -> None:
        self._stopping = True
        self.wake()

    def close_sockets(self) -> None:
        for sock in (self.listener, self._wake_r, self._wake_w):
            _close(sock)
        with contextlib.suppress(OSError):
            self._selector.close()  # in a forked child nothing else will


def _whole(head: bytes | bytearray) -> bool:
    """The request head is complete (a blank line; the stdlib accepts a bare LF too)."""
    return b"\r\n\r\n" in head or b"\n\n" in head


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


def _send_and_close(sock: socket.socket, payload: bytes) -> None:
    """A tiny answer, without waiting (the selector thread must never block on a client),
    then close. It fits an empty socket buffer; a client that left its buffer full gets
    what fits."""
    with contextlib.suppress(OSError):
        sock.setblocking(False)
        sock.send(payload)
    _close(sock)


def _log_once(server: _Server, message: str, error: BaseException | None) -> None:
    kind = type(error).__name__
    if not server.errors_logged.first(kind):
        return
    with contextlib.suppress(Exception):  # a log handler's failure must not end the request
        _log.error(message, extra={"error_type": kind, "error": str(error)})


def render_prometheus() -> bytes:
    """Every metric the app records, in Prometheus text format (what /metrics serves)."""
    _runtime.current()
    return bytes(generate_latest(REGISTRY))


_PROBES = {
    "/health": "get_detailed_status",
    "/health/live": "get_liveness_status",
    "/health/ready": "get_readiness_status",
}


class _Handler(BaseHTTPRequestHandler):
    """Parses and answers one request whose head the selector has already read."""

    server: _Server  # type: ignore[assignment]
    protocol_version = "HTTP/1.1"  # keep-alive: probes and scrapers reuse connections
    # Headers and body leave in one write (flushed after each request), and without Nagle:
    # a small second write behind an unacknowledged first one waits for the peer's delayed
    # ACK, 40 ms per request on Linux.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def __init__(self, request: socket.socket, address: Any, server: _Server, head: bytes):
        self._head = head
        self.leftover = b""
        super().__init__(request, address, server)  # type: ignore[arg-type]

    def setup(self) -> None:
        # StreamRequestHandler.setup, reading from the head we already have.
        self.connection = self.request
        if self.disable_nagle_algorithm:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        self.rfile = io.BytesIO(self._head)
        self.wfile = self.connection.makefile("wb", self.wbufsize)

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()
        self.leftover = self.rfile.read()

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
            target=server.serve_forever, name=f"otel-tdd-ops-server-{self.port}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop accepting, close the socket, wait for the selector thread (not for clients).

        In a forked child the selector thread does not exist (it stayed in the
        parent): the child only closes its copies of the sockets, at once.
        """
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        if os.getpid() != self._server.pid:
            self._server.close_sockets()
            return
        self._server.stop()
        self._thread.join(timeout_s)
        self._server.close_sockets()

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
        knob = (
            "OTEL_TDD_OPS_PORT (or configure(ops_port=...)) to a free port, or 0 for any free port"
        )
        if error.errno == errno.EADDRINUSE:
            reason = f"port {port} is already in use"
        elif error.errno == errno.EACCES:
            reason = f"permission denied for port {port}"
        elif error.errno == errno.EADDRNOTAVAIL or isinstance(error, socket.gaierror):
            reason = f"{host!r} is not an address of this machine"
            knob = "OTEL_TDD_OPS_HOST (or configure(ops_host=...)) to 127.0.0.1, 0.0.0.0 or ::"
        else:
            reason = error.strerror or str(error)
        raise OpsServerError(
            error.errno, f"ops server cannot listen on {host}:{port}: {reason}; set {knob}"
        ) from error
    return OpsServer(server)
