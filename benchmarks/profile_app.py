"""Where an instrumented request's time goes: py-spy on the Flask app's gunicorn worker.

    .venv/bin/pip install py-spy        # not a dependency: a tool for this script only
    .venv/bin/python benchmarks/profile_app.py                 # otel-tdd run, 10 s under wrk
    .venv/bin/python benchmarks/profile_app.py --way bare      # the same app bare
    .venv/bin/python benchmarks/profile_app.py --env OTEL_SEMCONV_STABILITY_OPT_IN=http

Starts what app_overhead.py starts (the Collector, the stub, the Flask app, one
gunicorn sync worker), loads it with ``wrk -t1 -c4`` and meanwhile samples the
worker with ``py-spy record --nonblocking --format raw``. Each sample is charged
to the innermost frame that belongs to a known component (the WSGI/Flask
instrumentors, the SDK's span, metric and log parts, context, otel-tdd's
logging...), so a component's figure is what it spends itself, not what it
calls; samples of background threads (the batch exporters) are one line. A
figure in µs per request is samples / rate / requests served.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import app_overhead as bench

# (component, path fragment), innermost match wins; order matters for overlapping paths.
COMPONENTS = (
    ("SDK metrics: histogram/counter record", "opentelemetry/sdk/metrics/"),
    ("SDK span processor + OTLP export (request thread)", "opentelemetry/sdk/trace/export/"),
    ("SDK id generation", "opentelemetry/sdk/trace/id_generator"),
    ("SDK sampler", "opentelemetry/sdk/trace/sampling"),
    ("SDK span start/end/attributes", "opentelemetry/sdk/trace/"),
    ("SDK attributes (BoundedAttributes)", "opentelemetry/attributes/"),
    ("SDK logs (LoggingHandler, LogRecord)", "opentelemetry/sdk/_logs/"),
    ("SDK resources/util", "opentelemetry/sdk/"),
    ("context attach/detach", "opentelemetry/context/"),
    ("propagation (inject/extract)", "opentelemetry/propagat"),
    ("propagation (inject/extract)", "opentelemetry/trace/propagation/"),
    ("semconv helpers (_semconv, util.http)", "opentelemetry/instrumentation/_semconv"),
    ("semconv helpers (_semconv, util.http)", "opentelemetry/util/http"),
    ("WSGI instrumentor", "opentelemetry/instrumentation/wsgi/"),
    ("Flask instrumentor", "opentelemetry/instrumentation/flask/"),
    ("requests/urllib3 instrumentors", "opentelemetry/instrumentation/requests/"),
    ("requests/urllib3 instrumentors", "opentelemetry/instrumentation/urllib3/"),
    ("instrumentation utils", "opentelemetry/instrumentation/"),
    ("OTel API (trace, metrics, logs)", "opentelemetry/"),
    ("otel-tdd logging (JSON, redaction, guard)", "otel_tdd/structured_logging"),
    ("otel-tdd logging (JSON, redaction, guard)", "otel_tdd/logging"),
    ("otel-tdd logging (JSON, redaction, guard)", "otel_tdd/redact"),
    ("otel-tdd framework_logs", "otel_tdd/logs/framework"),
    ("otel-tdd other", "otel_tdd/"),
)
APP = "app + Flask/Django + gunicorn + requests (and the stdlib they call)"
STDLIB = sysconfig.get_paths()["stdlib"]
OWN_CODE = ("opentelemetry/", "otel_tdd/", "logfire/")


def frame_path(frame: str) -> str:
    # "func (path/to/file.py:123)"
    start = frame.rfind("(")
    return frame[start + 1 :].rsplit(":", 1)[0] if start >= 0 else frame


def charge(frames: list[str]) -> str:
    """The component a sample's time is charged to, walking up from the leaf.

    Stdlib frames are neutral (a lock, a socket, ``logging``: charged to whoever
    called them); the first frame that belongs to a component or to third-party
    or app code decides. So the Flask instrumentor's wrapper around the whole app
    is charged only for what it does itself, not for the app it calls.
    """
    for frame in reversed(frames):
        path = frame_path(frame)
        hit = next((name for name, part in COMPONENTS if part in path), None)
        if hit is not None:
            return hit
        if not (path.startswith((STDLIB, "<")) or "/" not in path):
            return APP
    return APP


def frame_name(frame: str) -> str:
    path = frame_path(frame)
    for marker in OWN_CODE:
        if marker in path:
            path = marker + path.split(marker, 1)[1]
            break
    return f"{frame.split(' (', 1)[0]} ({path})"


def analyse(raw: Path, rate_hz: int, requests: int, top: int) -> None:
    per_component: collections.Counter[str] = collections.Counter()
    per_function: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        if any("threading.py" in f and "_bootstrap" in f for f in frames[:2]):
            per_component["background threads (batch export, metric reader)"] += count
            continue
        per_component[charge(frames)] += count
        leaf_own = charge(frames) != APP
        own = next((f for f in reversed(frames) if any(m in frame_path(f) for m in OWN_CODE)), None)
        if own is not None and leaf_own:
            per_function[frame_name(own)] += count

    def us(samples: int) -> float:
        return samples / rate_hz / requests * 1e6

    print(
        f"{total} samples at {rate_hz} Hz, {requests} requests: "
        f"{us(total):.0f} µs of worker time per request\n"
    )
    print("| component (own time, innermost frame) | µs per request | share |")
    print("| --- | ---: | ---: |")
    for name, samples in per_component.most_common():
        print(f"| {name} | {us(samples):.0f} | {samples / total:.0%} |")
    print(
        f"\n| top {top} functions of OpenTelemetry / otel-tdd / Logfire (innermost) "
        "| µs per request |"
    )
    print("| --- | ---: |")
    for name, samples in per_function.most_common(top):
        print(f"| `{name}` | {us(samples):.1f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--way", default="ours", choices=("bare", "ours", "stock", "logfire"))
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the app")
    parser.add_argument("--keep", type=Path, help="copy py-spy's raw output here")
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(bench.VENV_BIN / "py-spy")
    if not Path(py_spy).exists():
        sys.stderr.write("py-spy is missing: .venv/bin/pip install py-spy\n")
        return 2
    app = bench.APP_LIST[0]
    with tempfile.TemporaryDirectory(prefix="app-profile-") as tmp_name:
        tmp = Path(tmp_name)
        bench.make_database(tmp / "bench.sqlite3")
        with bench.stub_server() as stub_url, bench.collector(tmp / "stack") as endpoint:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LOGFIRE"))}
            env.update(
                BENCH_DB=str(tmp / "bench.sqlite3"),
                BENCH_STUB_URL=stub_url,
                OTEL_SERVICE_NAME="app-bench",
                OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
                OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                PYTHONPATH=str(bench.APPS),
            )
            port = bench.free_port()
            cmd, env = bench.command_and_env(app, args.way, port, env, bench.STOCK_VENV / "bin")
            env.update(dict(item.split("=", 1) for item in args.env))
            url = f"http://127.0.0.1:{port}{bench.URL_PATH}"
            with open(tmp / "app.log", "wb") as log:
                proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                bench.wait_ready(url, proc)
                bench.wrk(url, 1)
                worker = bench.serving_pid(proc.pid)
                raw = tmp / "profile.txt"
                spy = subprocess.Popen(
                    [
                        py_spy,
                        "record",
                        "-p",
                        str(worker),
                        "-d",
                        str(args.duration + 1),
                        "-r",
                        str(args.rate),
                        "--nonblocking",
                        "--full-filenames",
                        "--format",
                        "raw",
                        "-o",
                        str(raw),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                time.sleep(0.5)
                out = bench.wrk(url, args.duration)
                spy.wait(timeout=60)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=15)
            rps, p50, p99, _errors = bench.parse_wrk(out)
            # py-spy's window covers wrk's; idle samples are not recorded.
            requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
            print(
                f"# profile of flask under {args.way} {' '.join(args.env)}: {rps:.0f} req/s, "
                f"p50 {p50:.2f} ms, p99 {p99:.2f} ms\n"
            )
            if args.keep:
                shutil.copy(raw, args.keep)
            analyse(raw, args.rate, requests, args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
