"""The walk's first step and the shipped Jaeger configs, against real binaries.

``otel-tdd exemplars`` runs against Debian's Prometheus 2.42 with exemplar
storage, scraping an OpenMetrics endpoint served here whose exemplars name the
traces of stores_fixtures.py's app; the slowest one opens in ``otel-tdd trace``.
Then ``jaeger validate`` accepts the shipped configs and refuses a misspelt key.
A missing Go, build or Prometheus FAILS (never skips).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from stores_helpers import (
    App,
    JaegerUnderTest,
    otel_tdd,
    save_walk,
    start,
    wait_for,
)

from otel_tdd.exemplars_query import fetch_exemplars
from otel_tdd.stack import process

pytestmark = pytest.mark.integration
# The stores and the app, as fixtures shared with the other stores' test module.
pytest_plugins = ["stores_fixtures"]


# --- exemplars: Prometheus 2.42 with exemplar storage ----------------------------------------


class _OpenMetrics(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header(
            "Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8"
        )
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


def _openmetrics(slow: str, fast: str) -> bytes:
    """A latency histogram whose slow and fast buckets carry our two traces as exemplars."""
    now = time.time()
    name = "shop_request_duration_seconds"

    def bucket(le: str, count: int, trace_id: str, span_id: str, value: float) -> str:
        exemplar = f'{{trace_id="{trace_id}",span_id="{span_id}"}} {value} {now:.3f}'
        return f'{name}_bucket{{le="{le}"}} {count} # {exemplar}\n'

    return (
        f"# TYPE {name} histogram\n# UNIT {name} seconds\n"
        + bucket("0.1", 1, fast, "00f067aa0ba902b7", 0.012)
        + bucket("0.5", 2, slow, "00f067aa0ba902b8", 0.31)
        + f'{name}_bucket{{le="+Inf"}} 2\n{name}_sum 0.322\n{name}_count 2\n# EOF\n'
    ).encode()


@pytest.fixture(scope="module")
def prometheus_with_exemplars(app: App, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus not found: apt-get install prometheus", pytrace=False)
    handler = type(
        "Handler",
        (_OpenMetrics,),
        {"body": _openmetrics(app.slow_failed.trace_id, app.fast_ok.trace_id)},
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = tmp_path_factory.mktemp("prometheus")
    (port,) = process.free_ports(1)
    (base / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: shop\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{server.server_address[1]}']}}]\n"
    )
    argv = [
        binary, f"--config.file={base / 'prometheus.yml'}", f"--storage.tsdb.path={base / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--enable-feature=exemplar-storage",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        running = start(argv, base / "prometheus.log", f"{url}/-/ready", "Prometheus")
        try:
            wait_for(
                lambda: len(fetch_exemplars(url, "shop_request_duration_seconds")) >= 2,
                30,
                "Prometheus to store both exemplars",
            )
            yield url
        finally:
            process.stop(running.pid, running.argv)
    finally:
        server.shutdown()
        server.server_close()


def test_exemplars_list_the_slowest_trace_first_and_it_opens(
    app: App, prometheus_with_exemplars: str, jaeger: JaegerUnderTest, victoria_logs: str
) -> None:
    metric = "shop_request_duration_seconds"
    result = otel_tdd("exemplars", metric, "--prometheus", prometheus_with_exemplars)
    assert result.returncode == 0, result.stderr
    save_walk("exemplars", f"$ otel-tdd exemplars {metric}\n{result.stdout}")
    rows = result.stdout.splitlines()[1:]
    assert [row.split()[2] for row in rows] == [app.slow_failed.trace_id, app.fast_ok.trace_id]
    assert rows[0].split()[0] == "310.0ms"
    assert "le=0.5" in rows[0]
    # The walk's last step: the slowest bucket's trace id opens in `otel-tdd trace`.
    opened = otel_tdd(
        "trace", rows[0].split()[2], "--jaeger", jaeger.query_url, "--logs", victoria_logs
    )
    assert opened.returncode == 0, opened.stderr
    assert app.slow_failed.error_message in opened.stdout


def test_exemplars_of_a_metric_without_any_say_what_prometheus_needs(
    prometheus_with_exemplars: str,
) -> None:
    result = otel_tdd(
        "exemplars", "no_such_metric_seconds", "--prometheus", prometheus_with_exemplars
    )
    assert result.returncode == 0
    assert result.stdout == ""
    assert "exemplar-storage" in result.stderr


# --- the shipped Jaeger configs, checked by Jaeger itself ------------------------------------


@pytest.mark.parametrize(
    "config", ["compose/jaeger/config.yaml", "deploy/k8s/stores/jaeger-config.yaml"]
)
def test_jaeger_accepts_the_shipped_configs(store_binaries: dict[str, Path], config: str) -> None:
    path = Path(__file__).resolve().parents[2] / config
    result = subprocess.run(
        [str(store_binaries["jaeger"]), "validate", f"--config={path}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_jaeger_validate_rejects_a_misspelt_key(
    store_binaries: dict[str, Path], tmp_path: Path
) -> None:
    """The check above can fail: a typo in the config is refused by name."""
    source = (Path(__file__).resolve().parents[2] / "compose/jaeger/config.yaml").read_text()
    bad = tmp_path / "config.yaml"
    bad.write_text(source.replace("enable_tracing:", "enable_tracin:"))
    result = subprocess.run(
        [str(store_binaries["jaeger"]), "validate", f"--config={bad}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "enable_tracin" in result.stdout + result.stderr
