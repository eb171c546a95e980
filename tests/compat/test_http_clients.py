"""The matrix's HTTP client rows: requests, httpx (sync and async) and urllib3, bare and
under ``otel-tdd run``, against a local stub that records the headers it receives.

Per call one CLIENT span, and the ``traceparent`` the stub received names that span:
issue 13, defect 1 (httpx never instrumented: its ``httpx2`` entry point loaded the
instrumentation half-initialised, with a WARNING and an ERROR on every start) fails
here as "no client span" and as wrapper noise. A refused connection is an ERROR span.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from compat_helpers import Run, header_stub, no_wrapper_noise, ours, wrapped, wrapped_env
from run_helpers import BIN, clean_env

from otel_tdd.stack import process

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parent / "apps" / "http_client_app.py"
CLIENTS = {  # parameter -> (library distribution, scenario)
    "requests": ("requests", "sync"),
    "httpx": ("httpx", "sync Client"),
    "httpx_async": ("httpx", "AsyncClient"),
    "urllib3": ("urllib3", "PoolManager"),
}


def run_client(argv: list[str], env: dict[str, str]) -> Run:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    records = []
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return Run([], result.returncode, records, result.stdout, result.stderr)


def printed(run: Run) -> list[str]:
    return [line for line in run.stdout.splitlines() if not line.startswith("{")]


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_http_client_row(
    client: str, module_collector: Any, compat_row: Callable[..., None]
) -> None:
    collector = module_collector
    library, scenario = CLIENTS[client]
    service = f"compat-client-{client}"
    refused = f"http://127.0.0.1:{process.free_ports(1)[0]}"
    with header_stub() as stub:
        argv = [str(BIN / "python"), str(APP), client, stub.url, refused]
        bare = run_client(argv, clean_env())
        stub.requests.clear()
        run = run_client(wrapped(argv, collector.otlp_http_endpoint, service), wrapped_env())

    assert printed(run) == printed(bare) == ["200 stub-ok", "404 stub-missing", printed(bare)[2]]
    assert printed(bare)[2].startswith("error "), bare.output
    assert run.exit_code == bare.exit_code == 0, run.output
    no_wrapper_noise(run, bare)

    def three_client_spans() -> list[dict[str, Any]]:
        spans = [s for s in ours(collector.spans(), service) if s["kind"] == "CLIENT"]
        return spans if len(spans) >= 3 else []

    spans = collector.wait_for(three_client_spans, 20, f"{service}'s client spans")
    assert len(spans) == 3, [(s["name"], s["attributes"]) for s in spans]
    assert len({s["trace_id"] for s in spans}) == 3  # one call, one trace
    # The stub saw each call's traceparent, naming that call's client span.
    on_the_wire = stub.traceparents()
    assert len(on_the_wire) == 2, stub.requests
    by_id = {s["span_id"]: s for s in spans}
    for header in on_the_wire:
        _, trace_id, span_id, _flags = header.split("-")
        assert by_id[span_id]["trace_id"] == trace_id, header

    def outcome(span: dict[str, Any]) -> str:
        attributes = span["attributes"]
        code = attributes.get("http.response.status_code", attributes.get("http.status_code"))
        return str(code) if code is not None else "refused"

    statuses = [f"{outcome(s)}: {s['status_code']}" for s in sorted(spans, key=outcome)]
    (refused_span,) = [
        s for s in spans if s["span_id"] not in {h.split("-")[2] for h in on_the_wire}
    ]
    assert refused_span["status_code"] == "ERROR", refused_span
    # Every client alike: a 4xx response is an error of the client's span, a 200 is not.
    assert statuses == ["200: UNSET", "404: ERROR", "refused: ERROR"], statuses

    compat_row(
        library,
        f"{scenario}, a script",
        [
            "same output and exit code as bare",
            "one client span per call, its traceparent on the wire",
            "a refused connection is an error span",
            "flushed at exit",
            "no wrapper WARNING/ERROR",
        ],
        notes=[f"span status per call: {', '.join(statuses)}"],
    )
