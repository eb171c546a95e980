"""The ops server under probe load: wrk against each endpoint while the app keeps working.

    .venv/bin/python benchmarks/ops_server_wrk.py                  # 10 s per endpoint
    .venv/bin/python benchmarks/ops_server_wrk.py --duration 2     # shorter run
    .venv/bin/python benchmarks/ops_server_wrk.py --quick          # smoke run (CI): 1 s each

Starts an app process (this file with ``--serve``): ``configure(ops_port=0)``,
three built-in health checks (an SQLite database, memory, disk space) on the
default monitor, and an app thread that does work the whole time: per item a
span, a JSON log record (to /dev/null), a counter and a histogram, about 1 ms
apart. Then, one endpoint at a time, runs

    wrk -t2 -c16 -d10s --latency http://127.0.0.1:PORT/<path>

(wrk from Debian's package), and prints requests/s, p50/p99 latency, errors
(socket errors plus non-2xx answers) and the app thread's items/s during each
run next to its idle rate. A last run with more connections than the server's
cap (64) shows the load shedding. docs/benchmarks.md records the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ENDPOINTS = ("/health/live", "/health/ready", "/health", "/metrics")


# --- the app under test ----------------------------------------------------------------------


def serve(database: str) -> None:
    """The app: ops server, checks, and a worker thread; prints its URL, runs until killed."""
    import otel_tdd
    from otel_tdd.health_check import (
        database_check,
        default_monitor,
        disk_space_check,
        memory_check,
    )
    from otel_tdd.metrics import catalog
    from otel_tdd.structured_logging import StructuredLogger

    runtime = otel_tdd.configure("ops-bench", ops_port=0)
    health = default_monitor()
    health.register_check("database_connection", database_check(database))
    health.register_check("memory_usage", memory_check(warning_percent=99, critical_percent=100))
    health.register_check("disk_space", disk_space_check("/", critical_percent=100))
    logger = StructuredLogger("ops_bench.app")

    def work() -> None:
        item = 0
        while True:
            started = time.perf_counter()
            with runtime.tracer.start_as_current_span("work item", attributes={"item": item}):
                logger.info("work item done", {"item": item})
                catalog.tasks_completed.add(1, {"kind": "bench"})
            catalog.operation_duration.record(time.perf_counter() - started, {"op": "work"})
            item += 1
            time.sleep(0.001)

    threading.Thread(target=work, name="app-worker", daemon=True).start()
    sys.stderr.write(json.dumps({"url": runtime.ops_server.url}) + "\n")
    sys.stderr.flush()
    threading.Event().wait()


# --- the driver ------------------------------------------------------------------------------


@dataclass
class Run:
    path: str
    connections: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    socket_errors: int
    non_2xx: int
    app_items_per_s: float


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS_MS[unit]


def parse_wrk(output: str) -> dict[str, float]:
    def find(pattern: str) -> re.Match[str] | None:
        return re.search(pattern, output, re.M)

    p50 = find(r"^\s+50%\s+(\S+)\s*$")
    p99 = find(r"^\s+99%\s+(\S+)\s*$")
    rps = find(r"^Requests/sec:\s+([\d.]+)")
    total = find(r"^\s+(\d+) requests in")
    if not (p50 and p99 and rps and total):
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    socket = find(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
    non_2xx = find(r"Non-2xx or 3xx responses: (\d+)")
    return {
        "p50_ms": _ms(p50.group(1)),
        "p99_ms": _ms(p99.group(1)),
        "requests_per_s": float(rps.group(1)),
        "requests": float(total.group(1)),
        "socket_errors": float(sum(int(g) for g in socket.groups())) if socket else 0.0,
        "non_2xx": float(non_2xx.group(1)) if non_2xx else 0.0,
    }


def items_done(url: str) -> float:
    """The app's work counter, read from its own /metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("tdd_tasks_completed_total{")
    )


def rate(url: str, seconds: float) -> float:
    before = items_done(url)
    time.sleep(seconds)
    return (items_done(url) - before) / seconds


def run_wrk(url: str, path: str, threads: int, connections: int, duration: int) -> Run:
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        "5s",
        url + path,
    ]
    before = items_done(url)
    started = time.monotonic()
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    elapsed = time.monotonic() - started
    items = items_done(url) - before
    figures = parse_wrk(output)
    return Run(
        path=path,
        connections=connections,
        requests_per_s=figures["requests_per_s"],
        p50_ms=figures["p50_ms"],
        p99_ms=figures["p99_ms"],
        requests=int(figures["requests"]),
        socket_errors=int(figures["socket_errors"]),
        non_2xx=int(figures["non_2xx"]),
        app_items_per_s=items / elapsed,
    )


WRK_MISSING = "wrk is not installed: apt-get install wrk (Debian's package, /usr/bin/wrk)"


def require_wrk() -> str:
    """wrk's path, or the install line (no probe load without it: fail, never skip)."""
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError(WRK_MISSING)
    return path


@contextmanager
def app_process() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """The app (this file with ``--serve``) as a child: its ops URL; killed by its pid on exit."""
    with tempfile.TemporaryDirectory() as tmp:
        database = str(Path(tmp) / "bench.db")
        sqlite3.connect(database).close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_EXPORTER_OTLP")}
        app = subprocess.Popen(
            [sys.executable, __file__, "--serve", database],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert app.stderr is not None
            line = app.stderr.readline()
            if not line:
                app.wait(10)
                raise RuntimeError(f"the app exited ({app.returncode}) before printing its URL")
            # Keep reading its stderr, so a chatty app never blocks on a full pipe.
            threading.Thread(target=app.stderr.read, name="drain-app-stderr", daemon=True).start()
            yield json.loads(line)["url"], app
        finally:
            app.terminate()
            try:
                app.wait(timeout=10)
            except subprocess.TimeoutExpired:
                app.kill()  # never leave the app behind, even one stuck in its shutdown
                app.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", metavar="DATABASE", help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--overload-connections", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 s per wrk run")
    parser.add_argument("--json", action="store_true", help="print the runs as JSON too")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    try:
        require_wrk()
    except RuntimeError as error:
        sys.exit(str(error))
    idle_s = 1.0 if args.quick else 3.0
    if args.quick:
        args.duration = 1

    with app_process() as (url, _app):
        idle = rate(url, idle_s)
        runs = [
            run_wrk(url, path, args.threads, args.connections, args.duration) for path in ENDPOINTS
        ]
        runs.append(
            run_wrk(url, "/health/live", args.threads, args.overload_connections, args.duration)
        )

    print(f"python {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}")
    print(f"app thread idle: {idle:.0f} items/s (no probe load)\n")
    print("| endpoint | wrk | requests/s | p50 | p99 | errors | app items/s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for run in runs:
        errors = f"{run.socket_errors} socket, {run.non_2xx} non-2xx of {run.requests}"
        print(
            f"| `{run.path}` | -t{args.threads} -c{run.connections} -d{args.duration}s "
            f"| {run.requests_per_s:.0f} | {run.p50_ms:.2f} ms | {run.p99_ms:.2f} ms "
            f"| {errors} | {run.app_items_per_s:.0f} |"
        )
    if args.json:
        print(json.dumps([run.__dict__ for run in runs], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
