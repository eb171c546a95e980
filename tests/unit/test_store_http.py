"""What the query commands say when a store cannot be asked or answers badly.

Every failure is a StoreQueryError with the fix in its message, never a
traceback: a URL that is not HTTP, a store that is down (the hint names how to
start that store), an answer cut short, an id that is neither hex nor base64,
a --limit below 1. The stores themselves are in tests/integration/test_stores*.py.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator, Sequence

import pytest

from otel_tdd import stores_cli
from otel_tdd import stores_query as q
from otel_tdd.stack import process


def dead_url() -> str:
    (port,) = process.free_ports(1)  # nothing listens there
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "127.0.0.1:9428"])
def test_a_url_that_is_not_http_is_refused_before_opening_it(url: str) -> None:
    with pytest.raises(
        q.StoreQueryError,
        match=r"bad VictoriaLogs URL .*use http:// or https://, e\.g\. http://127\.0\.0\.1:9428$",
    ):
        q.open_url(url, "VictoriaLogs")


def test_the_cli_refuses_a_file_url_with_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert stores_cli.logs_cli(["--logs", "file:///etc/passwd"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("otel-tdd logs: error: bad VictoriaLogs URL 'file:///etc/passwd/")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "store,hint",
    [
        ("Jaeger", "jaeger victoria-logs`), or pass --jaeger URL or set OTEL_TDD_JAEGER_URL"),
        (
            "VictoriaLogs",
            "up -d jaeger victoria-logs`), or pass --logs URL or set OTEL_TDD_LOGS_URL",
        ),
        ("Prometheus", "start it with `otel-tdd stack up`, or pass --prometheus URL"),
    ],
)
def test_a_store_that_is_down_is_named_with_how_to_start_it(store: str, hint: str) -> None:
    """`otel-tdd stack up` starts all three; compose's way to start the two stores is named too."""
    url = dead_url()
    with pytest.raises(q.StoreQueryError) as caught:
        q.open_url(url, store)
    message = str(caught.value)
    assert message.startswith(f"cannot reach {store} at {url}")
    compose = "`docker compose -f compose/docker-compose.yml up -d jaeger victoria-logs`"
    assert (compose in message) == (store != "Prometheus")
    assert hint in message
    assert "`otel-tdd stack up`" in message


@pytest.fixture
def cut_short() -> Iterator[str]:
    """A server announcing 100 bytes and sending 10: an answer cut short."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"data": [')

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    thread.join(10)
    server.close()


def test_an_answer_cut_short_is_a_store_error(cut_short: str) -> None:
    with pytest.raises(q.StoreQueryError, match=r"Jaeger at .* sent a broken answer "
                       r"\(IncompleteRead"):  # fmt: skip
        q.known_services(cut_short)


def test_an_id_neither_hex_nor_base64_is_a_store_error() -> None:
    span = {"traceId": "not base64!", "spanId": "a" * 16, "name": "x",
            "startTimeUnixNano": "1", "endTimeUnixNano": "2"}  # fmt: skip
    payload = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    with pytest.raises(q.StoreQueryError, match="neither hex nor base64: 'not base64!'"):
        q._spans_from_otlp(payload)


@pytest.mark.parametrize(
    "command,argv",
    [
        (stores_cli.logs_cli, ["--limit", "0", "--logs"]),
        (stores_cli.exemplars_cli, ["x_seconds", "--limit", "0", "--prometheus"]),
        (stores_cli.traces_cli, ["--service", "s", "--limit", "-1", "--jaeger"]),
    ],
)
def test_a_limit_below_1_is_refused_before_asking(
    command: Callable[[Sequence[str]], int], argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert command([*argv, dead_url()]) == 1
    err = capsys.readouterr().err
    assert f"bad --limit {argv[-2]}: use 1 or more" in err
    assert "cannot reach" not in err  # refused before any request


def test_the_follow_cursor_keeps_every_nanosecond() -> None:
    """Through a float, 1800000000.123456789 s comes back ~200 ns off at today's epoch."""
    ns = 1_800_000_000_123_456_789
    assert q._start_arg(ns) == "1800000000.123456789"
    assert q._start_arg(1_800_000_000_000_000_001) == "1800000000.000000001"
    assert f"{ns / 1e9:.9f}" != "1800000000.123456789"  # what the float version sent
