"""What every row of the compatibility matrix does and checks (tests/compat/test_web_*.py,
test_http_clients.py).

* :class:`HeaderStub`: a downstream HTTP service on 127.0.0.1 that records the
  headers it received, so a test sees the ``traceparent`` a client put on the wire.
* :func:`serve_and_probe`: start a server command, wait until it answers, send the
  row's requests (each with its own W3C ``traceparent``, so the test knows the
  trace of every request), stop it with SIGTERM; the same function serves the bare
  run and the one under ``otel-tdd run``, so their answers can be compared.
* The checks the issue lists, each a function that fails with the evidence.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from run_helpers import FLUSH_ONLY_AT_EXIT, OTEL_TDD, clean_env, http_get, running

# Loggers whose WARNING/ERROR would be the wrapper's own noise (an integration's
# record of the app's error, e.g. Streamlit's rerun, is the app's record).
WRAPPER_LOGGERS = ("otel_tdd", "opentelemetry")
APP_RECORD_LOGGERS = ("otel_tdd.integrations.",)


class HeaderStub:
    """A downstream service: ``/missing`` answers 404, anything else 200 ``stub-ok``."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                status, body = (
                    (404, b"stub-missing") if self.path == "/missing" else (200, b"stub-ok")
                )
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def traceparents(self) -> list[str]:
        return [headers["traceparent"] for _, headers in self.requests if "traceparent" in headers]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def header_stub() -> Iterator[HeaderStub]:
    stub = HeaderStub()
    try:
        yield stub
    finally:
        stub.close()


def new_traceparent() -> tuple[str, str]:
    """(traceparent header, its trace id): a sampled remote parent per request."""
    trace_id = secrets.token_hex(16)
    return f"00-{trace_id}-{secrets.token_hex(8)}-01", trace_id


@dataclass
class Probe:
    """One request of a row and what came back."""

    path: str
    trace_id: str = ""
    status: int = 0
    body: str = ""


@dataclass
class Run:
    """A server run: the answers, the exit code after SIGTERM, its output."""

    probes: list[Probe]
    exit_code: int
    stdout_records: list[dict[str, Any]] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""

    @property
    def output(self) -> str:
        return f"--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-3000:]}"

    def answers(self) -> list[tuple[str, int, str]]:
        return [(p.path, p.status, p.body) for p in self.probes]


def serve_and_probe(
    argv: Sequence[str],
    *,
    port: int,
    paths: Sequence[str],
    directory: Path,
    name: str,
    env: Mapping[str, str],
    cwd: Path | None = None,
    ready_path: str = "/ping",
    before_stop: Any = None,
) -> Run:
    """Start ``argv``, probe ``paths`` once ready, SIGTERM it; the answers and the output."""
    base = f"http://127.0.0.1:{port}"
    with running(argv, env, directory, name, cwd=cwd) as app:
        app.wait_http(base + ready_path)
        probes = []
        for path in paths:
            header, trace_id = new_traceparent()
            status, body = http_get(base + path, headers={"traceparent": header})
            probes.append(Probe(path, trace_id, status, body))
        if before_stop is not None:
            before_stop()
        exit_code = app.terminate()
        return Run(
            probes,
            exit_code,
            app.json_lines(),
            app.stdout_path.read_text(errors="replace"),
            app.stderr_path.read_text(errors="replace"),
        )


def wrapped(argv: Sequence[str], endpoint: str, service: str) -> list[str]:
    return [OTEL_TDD, "run", "--service-name", service, "--endpoint", endpoint, *argv]


def wrapped_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Export only at exit: what the Collector holds afterwards came through the flush."""
    return clean_env({**FLUSH_ONLY_AT_EXIT, **(extra or {})})


# --- checks ----------------------------------------------------------------------------


def ours(records: list[dict[str, Any]], service: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("service_name") == service]


# A stderr line at WARNING/ERROR level: a logging line, Python's warnings module
# ("...: DeprecationWarning: ...") or an exception's last line.
_LEVEL_LINE = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|\w*(Warning|Error|Exception): ")


def _shape(line: str) -> str:
    """A line with its numbers (pids, ports, times, addresses) blanked, to compare runs."""
    return re.sub(r"0x[0-9a-f]+|\d+", "N", line.strip())


def no_wrapper_noise(run: Run, bare: Run | None = None, known: Sequence[str] = ()) -> None:
    """No WARNING or ERROR record from otel-tdd or an instrumentor, no otel-tdd line on
    stderr, and no WARNING/ERROR-level line on stderr that the ``bare`` run (the same app
    without the wrapper) did not print too: a plain line comes from whichever library
    logged it, so only the wrapper's presence can explain one bare lacks. ``known``:
    fragments of such lines that are open defects, named where the row is defined."""
    noisy = [
        r
        for r in run.stdout_records
        if r.get("level") in ("WARNING", "ERROR", "CRITICAL")
        and str(r.get("logger", "")).startswith(WRAPPER_LOGGERS)
        and not str(r.get("logger", "")).startswith(APP_RECORD_LOGGERS)
    ]
    assert not noisy, json.dumps(noisy, indent=1)[:3000]
    assert "otel-tdd" not in run.stderr, run.stderr[-3000:]
    expected = {_shape(line) for line in bare.stderr.splitlines()} if bare else set()
    added = [
        line
        for line in run.stderr.splitlines()
        if _LEVEL_LINE.search(line) and _shape(line) not in expected
        and not any(fragment in line for fragment in known)
    ]  # fmt: skip
    assert not added, (added, run.stderr[-3000:])


def one_server_span_each(spans: list[dict[str, Any]], run: Run) -> dict[str, dict[str, Any]]:
    """Exactly one SERVER span in each request's trace; returns them by path."""
    found = {}
    for probe in run.probes:
        server = [s for s in spans if s["trace_id"] == probe.trace_id and s["kind"] == "SERVER"]
        assert len(server) == 1, (probe, [(s["name"], s["kind"]) for s in server])
        found[probe.path] = server[0]
    return found


def client_call_on_the_wire(
    spans: list[dict[str, Any]], stub: HeaderStub, trace_id: str, kinds: Sequence[str] = ("CLIENT",)
) -> dict[str, Any]:
    """The request's client span, and the stub saw its traceparent (trace id and span id)."""
    clients = [s for s in spans if s["trace_id"] == trace_id and s["kind"] in kinds]
    assert len(clients) == 1, [(s["name"], s["kind"]) for s in spans if s["trace_id"] == trace_id]
    client = clients[0]
    assert f"00-{trace_id}-{client['span_id']}-01" in stub.traceparents(), stub.traceparents()
    return client


def records_carry_the_span(
    run: Run, collector_logs: list[dict[str, Any]], trace_id: str, message: str, span_ids: set[str]
) -> None:
    """The app's record written inside the request: its trace and a span of the request,
    on stdout (JSON) and over OTLP."""
    out = [r for r in run.stdout_records if r.get("message") == message]
    assert len(out) == 1, out
    assert out[0]["trace_id"] == trace_id and out[0]["span_id"] in span_ids, out
    otlp = [r for r in collector_logs if r["body"] == message]
    assert len(otlp) == 1, otlp
    assert otlp[0]["trace_id"] == trace_id and otlp[0]["span_id"] in span_ids, otlp


def one_error_span_and_record(
    spans: list[dict[str, Any]],
    run: Run,
    collector_logs: list[dict[str, Any]],
    trace_id: str,
    *,
    also_error: Sequence[str] = (),
) -> None:
    """One ERROR span in the trace (besides spans named in ``also_error``) and one ERROR
    record with the traceback in the trace, on stdout and over OTLP. An access line of
    the 500 at ERROR level (Django's runserver) is no record of the error."""
    in_this_trace = [(s["name"], s["status_code"]) for s in spans if s["trace_id"] == trace_id]
    errors = [n for n, status in in_this_trace if status == "ERROR" and n not in also_error]
    assert len(errors) == 1, in_this_trace
    expected = trace_id
    out = [r for r in run.stdout_records if r.get("level") == "ERROR" and r.get("exception")]
    assert len(out) == 1, out
    assert out[0]["trace_id"] == expected, out
    otlp = [
        r
        for r in collector_logs
        if r["severity_text"] == "ERROR" and r["attributes"].get("exception.stacktrace")
    ]
    assert len(otlp) == 1 and otlp[0]["trace_id"] == expected, otlp


def framework_lines_are_json(run: Run, logger_prefix: str, fragment: str) -> None:
    """A line the framework itself logs is one of our JSON records, not plain text."""
    assert any(
        str(r.get("logger", "")).startswith(logger_prefix) and fragment in str(r.get("message"))
        for r in run.stdout_records
    ), f"no JSON record of {logger_prefix} with {fragment!r}\n{run.stdout[-2000:]}"
    plain = [
        line
        for line in (run.stdout + run.stderr).splitlines()
        if fragment in line and not line.startswith("{")
    ]
    assert not plain, plain
