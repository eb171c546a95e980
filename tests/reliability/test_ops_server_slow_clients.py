"""Slow clients cannot starve the probes: /health/live and /health/ready answer within 1 s.

The attack of issue 14: connections that each send one header line every 2 s and
never finish their request. Before, each held one of the 64 handler threads for
as long as it kept trickling, and the kubelet's probes got 503 "too busy". The
trickler here reconnects whenever the server drops one of its connections, so
the pressure stays on for the whole (bounded) run.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from otel_tdd.health_check import HealthMonitor, clear_shutting_down
from otel_tdd.ops_server import OpsServer, start_ops_server

RUN_S = 8.0
LINE_EVERY_S = 2.0
PROBE_EVERY_S = 0.2
PROBE_BOUND_S = 1.0


class Trickler:
    """``count`` connections, one header line each every ``LINE_EVERY_S``, never a blank line."""

    def __init__(self, host: str, port: int, count: int) -> None:
        self.address = (host, port)
        self.count = count
        self.stop = threading.Event()
        self.reconnects = 0
        self.lines_sent = 0
        self._socks: list[socket.socket | None] = [None] * count
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _connect(self) -> socket.socket | None:
        try:
            sock = socket.create_connection(self.address, timeout=1)
            sock.sendall(b"GET /health/live HTTP/1.1\r\n")
            return sock
        except OSError:
            return None

    def _run(self) -> None:
        for i in range(self.count):
            self._socks[i] = self._connect()
        n = 0
        while not self.stop.wait(LINE_EVERY_S):
            n += 1
            for i, sock in enumerate(self._socks):
                try:
                    if sock is None:
                        raise OSError
                    sock.sendall(b"X-Slow-%d: %d\r\n" % (n, i))
                    self.lines_sent += 1
                except OSError:
                    if sock is not None:
                        sock.close()
                    self.reconnects += 1
                    self._socks[i] = self._connect()

    def __enter__(self) -> Trickler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self._thread.join(10)
        for sock in self._socks:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()


@pytest.fixture
def server(otel_capture: object) -> Iterator[OpsServer]:
    clear_shutting_down()  # readiness is 503 while a shutdown is marked (an earlier test's)
    with start_ops_server("127.0.0.1", 0, HealthMonitor()) as running:
        yield running


def probe(url: str) -> tuple[int, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=PROBE_BOUND_S * 3) as response:
            response.read()
            code = response.status
    except urllib.error.HTTPError as error:
        code = error.code
    except OSError:
        code = 0
    return code, time.monotonic() - started


@pytest.mark.timeout(60)
@pytest.mark.parametrize("slow_connections", [64, 200])
def test_probes_answer_within_a_second_under_slow_header_trickling_clients(
    server: OpsServer, slow_connections: int
) -> None:
    results: list[tuple[str, int, float]] = []
    with Trickler(server.host, server.port, slow_connections) as trickler:
        time.sleep(LINE_EVERY_S + 0.5)  # every slow connection is open and trickling
        deadline = time.monotonic() + RUN_S
        while time.monotonic() < deadline:
            for path in ("/health/live", "/health/ready"):
                code, took = probe(server.url + path)
                results.append((path, code, took))
            time.sleep(PROBE_EVERY_S)
        assert trickler.lines_sent >= slow_connections  # the attack really ran
    assert results
    bad = [r for r in results if r[1] != 200 or r[2] > PROBE_BOUND_S]
    assert not bad, f"{len(bad)} of {len(results)} probes failed or were slow: {bad[:5]}"
    print(
        f"slow_connections={slow_connections} probes={len(results)} "
        f"max_s={max(r[2] for r in results):.3f} reconnects={trickler.reconnects}"
    )
