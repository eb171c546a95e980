"""http_probe: the resolver's three answers (up, down, busy) from real sockets on loopback."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from otel_tdd.stack import process


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 503)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_200_is_up_and_another_status_is_down(health_server: str) -> None:
    assert process.http_probe(f"{health_server}/ok") is True
    assert process.http_probe(f"{health_server}/unready") is False


def test_a_refused_connection_is_down() -> None:
    (port,) = process.free_ports(1)
    assert process.http_probe(f"http://127.0.0.1:{port}/") is False


def test_no_answer_in_time_is_busy_not_down() -> None:
    # Listening but never accepting: the connection is queued, the request never answered.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        port = silent.getsockname()[1]
        assert process.http_probe(f"http://127.0.0.1:{port}/", timeout=0.3) is None
    finally:
        silent.close()
