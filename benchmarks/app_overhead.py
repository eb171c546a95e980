"""What otel-tdd costs a real web app, next to stock OpenTelemetry and Logfire.

    .venv/bin/python benchmarks/app_overhead.py               # 3 rounds, 5 s per run (~12 min)
    .venv/bin/python benchmarks/app_overhead.py --quick       # smoke run (CI): 1 round, 2 s each
    .venv/bin/python benchmarks/app_overhead.py --knobs       # Flask only: the stock knobs

Three small apps in benchmarks/apps/, never modified for a run: Flask under
gunicorn (1 sync worker), FastAPI under uvicorn, a minimal Django project under
gunicorn. Each request reads a row from SQLite, writes two log lines (the apps
call ``logging.basicConfig(level=INFO, stream=sys.stdout)``), calls a local HTTP
stub (a threaded server in this process) and returns JSON. Each app runs as:

- ``bare``: the server command alone;
- ``ours``: ``otel-tdd run <server>``;
- ``stock``: ``opentelemetry-instrument <server>`` from a separate venv holding
  only opentelemetry-distro and the same instrumentors (built once in
  ~/.cache/otel-tdd/bench/stock-venv), so nothing of ours is loaded;
- ``logfire``: a wrapper (apps/logfire_*.py) that calls ``logfire.configure``
  with ``send_to_logfire=False`` and the matching ``instrument_*`` calls;
- ``ours-off`` and ``stock-off``: the same with ``OTEL_TRACES_SAMPLER=always_off``.

All instrumented runs export traces, metrics and logs over OTLP/HTTP to one real
Collector (LocalStack, collector only). Load: ``wrk -t1 -c4 -dNs --latency``;
the runs are interleaved (round-robin over apps and ways, order rotating each
round) and we report medians of per-round ratios to the same round's bare run.
The half-rate run: wrk with a Lua ``delay()`` (8 connections, each waiting
8000/rate ms between requests: a closed loop with think time, as wrk2 is not in
Debian), aimed at half of bare's median req/s; the rate it reached is printed.
RSS is the serving process's (the gunicorn worker's) VmRSS after the run.
"""

from __future__ import annotations

import argparse
import datetime
import http.server
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"
ROOT = HERE.parent
VENV_BIN = Path(sys.executable).parent
STOCK_VENV = Path.home() / ".cache" / "otel-tdd" / "bench" / "stock-venv"
# The stock reference: the same versions as our venv's, and the same instrumentors
# `otel-tdd run` activates for these apps (docs/benchmarks.md lists them).
STOCK_PACKAGES = (
    "opentelemetry-distro",
    "opentelemetry-exporter-otlp",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation-flask",
    "opentelemetry-instrumentation-fastapi",
    "opentelemetry-instrumentation-starlette",
    "opentelemetry-instrumentation-django",
    "opentelemetry-instrumentation-requests",
    "opentelemetry-instrumentation-urllib",
    "opentelemetry-instrumentation-urllib3",
    "opentelemetry-instrumentation-httpx",
    "opentelemetry-instrumentation-logging",
    "flask",
    "gunicorn",
    "fastapi",
    "uvicorn",
    "django",
    "requests",
    "httpx",
)
URL_PATH = "/items/7?q=blue+shoes"
WAYS = ("bare", "ours", "stock", "logfire", "ours-off", "stock-off")
HALF_RATE_WAYS = ("bare", "ours", "stock", "logfire")


@dataclass(frozen=True)
class App:
    name: str
    # The server command after the interpreter's bin dir: (script, args...) with {port}.
    server: tuple[str, ...]
    logfire_server: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


GUNICORN = ("gunicorn", "-w", "1", "-b", "127.0.0.1:{port}", "--chdir", str(APPS))
UVICORN = ("uvicorn", "--host", "127.0.0.1", "--port", "{port}", "--app-dir", str(APPS))
UVICORN_QUIET = ("--no-access-log", "--log-level", "warning")
APP_LIST = (
    App("flask", (*GUNICORN, "flask_app:app"), (*GUNICORN, "logfire_flask:app")),
    App(
        "fastapi",
        (*UVICORN, *UVICORN_QUIET, "fastapi_app:app"),
        (*UVICORN, *UVICORN_QUIET, "logfire_fastapi:app"),
    ),
    App(
        "django",
        (*GUNICORN, "djangoapp.wsgi:application"),
        (*GUNICORN, "logfire_django:application"),
        {"DJANGO_SETTINGS_MODULE": "djangoapp.settings"},
    ),
)
# --knobs: the stock instrumentors' own options, each alone, under `otel-tdd run`.
KNOBS: dict[str, dict[str, str]] = {
    "ours (defaults)": {},
    "OTEL_SEMCONV_STABILITY_OPT_IN=http (new conventions only)": {
        "OTEL_SEMCONV_STABILITY_OPT_IN": "http"
    },
    "OTEL_METRICS_EXPORTER=none": {"OTEL_METRICS_EXPORTER": "none"},
    "one metric reader (OTEL_METRICS_EXPORTER=otlp, no in-process Prometheus)": {
        "OTEL_METRICS_EXPORTER": "otlp"
    },
    "OTEL_METRICS_EXEMPLAR_FILTER=always_off": {"OTEL_METRICS_EXEMPLAR_FILTER": "always_off"},
    "OTEL_LOGS_EXPORTER=none": {"OTEL_LOGS_EXPORTER": "none"},
    "OTEL_TRACES_EXPORTER=none (spans made, not exported)": {"OTEL_TRACES_EXPORTER": "none"},
    "no OTLP export at all (traces, metrics, logs: none)": {
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    },
    "requests instrumentor off (no client span)": {
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "requests,urllib3,urllib"
    },
    "flask instrumentor off (no server span)": {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "flask"},
    "OTEL_PYTHON_FLASK_EXCLUDED_URLS=items (span skipped)": {
        "OTEL_PYTHON_FLASK_EXCLUDED_URLS": "items"
    },
    "sampler always_off": {"OTEL_TRACES_SAMPLER": "always_off"},
    "sys.setswitchinterval(0.5 ms) in the worker (apps/switch_interval.py)": {
        "GUNICORN_CMD_ARGS": f"--config={APPS / 'switch_interval.py'}"
    },
    "export pacing off (apps/no_pacing.py)": {
        "GUNICORN_CMD_ARGS": f"--config={APPS / 'no_pacing.py'}"
    },
}


def say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the stub the apps call, the database, the Collector ------------------------------------


class StubHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without it, headers and body leave as two segments and Nagle plus the client's
    # delayed ACK add ~40 ms to every call.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        body = b'{"stock": 12}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def stub_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StubHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="stub", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/stock"
    finally:
        server.shutdown()
        server.server_close()


def make_database(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL)")
        conn.executemany(
            "INSERT INTO items VALUES (?, ?, ?)",
            [(i, f"item {i}", 9.5 + i) for i in range(1, 101)],
        )


@contextmanager
def collector(state: Path) -> Iterator[str]:
    sys.path.insert(0, str(ROOT))
    from otel_tdd.stack.local import LocalStack

    stack = LocalStack(state, free_ports=True, components=("collector",))
    try:
        stack.up()
        yield stack.otlp_http_endpoint
    finally:
        stack.down()


def ensure_stock_venv() -> Path:
    """The stock reference's venv, built once with our venv's versions of each package."""
    marker = STOCK_VENV / "bench-packages.txt"
    wanted = pinned(STOCK_PACKAGES)
    if marker.exists() and marker.read_text() == "\n".join(wanted):
        return STOCK_VENV / "bin"
    say(f"building the stock venv {STOCK_VENV} (once): {' '.join(wanted)}")
    shutil.rmtree(STOCK_VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(STOCK_VENV)], check=True)
    pip = [str(STOCK_VENV / "bin" / "pip"), "install", "-q", *wanted]
    subprocess.run(pip, check=True)
    marker.write_text("\n".join(wanted))
    return STOCK_VENV / "bin"


def pinned(names: tuple[str, ...]) -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in names:
        # The distro is not in our venv: it ships with opentelemetry-instrumentation.
        source = "opentelemetry-instrumentation" if name == "opentelemetry-distro" else name
        try:
            out.append(f"{name}=={version(source)}")
        except PackageNotFoundError:
            out.append(name)
    return out


# --- one run ---------------------------------------------------------------------------------


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    rss_mb: float
    errors: int
    # The serving process's CPU time (all threads: export too) per request served. Waiting
    # for the GIL or for a core costs none, so this moves far less with the machine's load.
    cpu_us: float = float("nan")


def command_and_env(
    app: App, way: str, port: int, base_env: dict[str, str], stock_bin: Path
) -> tuple[list[str], dict[str, str]]:
    env = {**base_env, **app.env}
    server = [part.format(port=port) for part in app.server]
    if way == "bare":
        return [str(VENV_BIN / server[0]), *server[1:]], env
    if way.startswith("ours"):
        cmd = [str(VENV_BIN / "otel-tdd"), "run", str(VENV_BIN / server[0]), *server[1:]]
    elif way.startswith("stock"):
        env["OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED"] = "true"
        env["OTEL_TRACES_EXPORTER"] = env["OTEL_METRICS_EXPORTER"] = "otlp"
        env["OTEL_LOGS_EXPORTER"] = "otlp"
        cmd = [str(stock_bin / "opentelemetry-instrument"), str(stock_bin / server[0]), *server[1:]]
    elif way == "logfire":
        server = [part.format(port=port) for part in app.logfire_server]
        cmd = [str(VENV_BIN / server[0]), *server[1:]]
    else:
        raise ValueError(f"unknown way {way!r}")
    if way.endswith("-off"):
        env["OTEL_TRACES_SAMPLER"] = "always_off"
    return cmd, env


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not answer {url} within {timeout_s} s")


def serving_pid(pid: int) -> int:
    """The gunicorn worker (the master's only child), else the process itself."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return pid
    return int(children[0]) if children else pid


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid``, all its threads, from /proc (clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(out: str) -> tuple[float, float, float, int]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {
        m.group(1): float(m.group(2)) * UNITS[m.group(3)]
        for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    }
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(non2xx.group(1)) if non2xx else 0
    return rps, lat["50"], lat["99"], errors


def wrk(url: str, duration_s: int, lua: Path | None = None, connections: int = 4) -> str:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency"]
    if lua is not None:
        cmd += ["-s", str(lua)]
    done = subprocess.run(
        [*cmd, url], capture_output=True, text=True, timeout=duration_s + 30, check=True
    )
    return done.stdout


def run_once(
    app: App,
    way: str,
    base_env: dict[str, str],
    stock_bin: Path,
    duration_s: int,
    lua: Path | None = None,
    extra_env: dict[str, str] | None = None,
    log_dir: Path | None = None,
) -> Result:
    port = free_port()
    cmd, env = command_and_env(app, way, port, base_env, stock_bin)
    env.update(extra_env or {})
    url = f"http://127.0.0.1:{port}{URL_PATH}"
    log_path = (log_dir or Path(tempfile.gettempdir())) / f"{app.name}-{way}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=APPS)
    try:
        wait_ready(url, proc)
        wrk(url, 1)  # warm-up: imports, first-request paths, connection pools
        pid = serving_pid(proc.pid)
        cpu_before = cpu_seconds(pid)
        out = wrk(url, duration_s, lua, connections=8 if lua else 4)
        cpu = cpu_seconds(pid) - cpu_before
        rps, p50, p99, errors = parse_wrk(out)
        rss = rss_mb(pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    served = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return Result(rps, p50, p99, rss, errors, cpu * 1e6 / max(served, 1))


def delay_script(path: Path, rate: float, connections: int = 8) -> Path:
    # Each connection waits this long before each request: about `rate` req/s in total
    # while a request takes well under the delay (the rate reached is printed anyway).
    delay_ms = max(1, round(connections * 1000 / rate))
    path.write_text(f"function delay()\n  return {delay_ms}\nend\n")
    return path


# --- the tables ------------------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, 2 s each")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds of wrk per run")
    parser.add_argument("--apps", default="flask,fastapi,django")
    parser.add_argument("--knobs", action="store_true", help="Flask under otel-tdd run, per knob")
    parser.add_argument("--knob", action="append", help="with --knobs: only knobs containing this")
    parser.add_argument(
        "--rate", type=float, help="with --knobs: wrk paced at about this many req/s"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration = 1, 2
    if shutil.which("wrk") is None:
        say("wrk is missing: apt-get install wrk (./dev setup does)")
        return 2
    apps = [a for a in APP_LIST if a.name in args.apps.split(",")]
    stock_bin = ensure_stock_venv()
    with tempfile.TemporaryDirectory(prefix="app-bench-") as tmp_name:
        tmp = Path(tmp_name)
        make_database(tmp / "bench.sqlite3")
        with stub_server() as stub_url, collector(tmp / "stack") as endpoint:
            base_env = {
                k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LOGFIRE"))
            }
            base_env.update(
                BENCH_DB=str(tmp / "bench.sqlite3"),
                BENCH_STUB_URL=stub_url,
                OTEL_SERVICE_NAME="app-bench",
                OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
                OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                PYTHONPATH=str(APPS),
            )
            header(args, endpoint)
            if args.knobs:
                knobs(apps[0], base_env, stock_bin, args, tmp)
            else:
                compare(apps, base_env, stock_bin, args, tmp)
    return 0


def header(args: argparse.Namespace, endpoint: str) -> None:
    from importlib.metadata import version

    versions = ", ".join(
        f"{name} {version(name)}"
        for name in (
            "opentelemetry-sdk",
            "logfire",
            "flask",
            "fastapi",
            "django",
            "gunicorn",
            "uvicorn",
        )
    )
    print(
        f"# app overhead, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; {versions}; "
        f"{args.rounds} round(s) x {args.duration} s, wrk -t1 -c4; OTLP/HTTP to {endpoint}\n"
    )


def compare(
    apps: list[App], base_env: dict[str, str], stock_bin: Path, args: argparse.Namespace, tmp: Path
) -> None:
    results: dict[tuple[str, str], list[Result]] = {}
    for round_no in range(args.rounds):
        for app in apps:
            order = WAYS[round_no % len(WAYS) :] + WAYS[: round_no % len(WAYS)]
            for way in order:
                result = run_once(app, way, base_env, stock_bin, args.duration, log_dir=tmp)
                results.setdefault((app.name, way), []).append(result)
                say(f"round {round_no + 1} {app.name:8} {way:9} {result}")
    print(
        "| app | run | req/s | ratio to bare | p50 ms | p99 ms | added p50 ms | added p99 ms "
        "| CPU µs/req | CPU µs added | RSS MB | errors |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for app in apps:
        bare = results[(app.name, "bare")]
        for way in WAYS:
            runs = results[(app.name, way)]
            ratios = [r.rps / b.rps for r, b in zip(runs, bare, strict=True)]
            add50 = [r.p50_ms - b.p50_ms for r, b in zip(runs, bare, strict=True)]
            add99 = [r.p99_ms - b.p99_ms for r, b in zip(runs, bare, strict=True)]
            cpu = [r.cpu_us - b.cpu_us for r, b in zip(runs, bare, strict=True)]
            print(
                f"| {app.name} | {way} | {med([r.rps for r in runs]):,.0f} | {med(ratios):.2f} "
                f"| {med([r.p50_ms for r in runs]):.2f} | {med([r.p99_ms for r in runs]):.2f} "
                f"| {med(add50):+.2f} | {med(add99):+.2f} | {med([r.cpu_us for r in runs]):,.0f} "
                f"| {med(cpu):+,.0f} | {med([r.rss_mb for r in runs]):.0f} "
                f"| {sum(r.errors for r in runs)} |"
            )
    print()
    half_rate(apps, results, base_env, stock_bin, args, tmp)


def half_rate(
    apps: list[App],
    results: dict[tuple[str, str], list[Result]],
    base_env: dict[str, str],
    stock_bin: Path,
    args: argparse.Namespace,
    tmp: Path,
) -> None:
    print(
        "| app | run at half of bare's max | target req/s | reached req/s | p50 ms | p99 ms "
        "| added p99 ms |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for app in apps:
        target = med([r.rps for r in results[(app.name, "bare")]]) / 2
        lua = delay_script(tmp / f"delay-{app.name}.lua", target)
        runs: dict[str, list[Result]] = {}
        for round_no in range(args.rounds):
            order = HALF_RATE_WAYS[round_no:] + HALF_RATE_WAYS[:round_no]
            for way in order:
                result = run_once(app, way, base_env, stock_bin, args.duration, lua, log_dir=tmp)
                runs.setdefault(way, []).append(result)
                say(f"half-rate round {round_no + 1} {app.name:8} {way:9} {result}")
        for way in HALF_RATE_WAYS:
            added = [r.p99_ms - b.p99_ms for r, b in zip(runs[way], runs["bare"], strict=True)]
            print(
                f"| {app.name} | {way} | {target:,.0f} | {med([r.rps for r in runs[way]]):,.0f} "
                f"| {med([r.p50_ms for r in runs[way]]):.2f} "
                f"| {med([r.p99_ms for r in runs[way]]):.2f} | {med(added):+.2f} |"
            )
    print()


def knobs(
    app: App, base_env: dict[str, str], stock_bin: Path, args: argparse.Namespace, tmp: Path
) -> None:
    names = ["bare", *(k for k in KNOBS if not args.knob or any(part in k for part in args.knob))]
    runs: dict[str, list[Result]] = {}
    lua = delay_script(tmp / f"delay-{app.name}.lua", args.rate) if args.rate else None
    for round_no in range(args.rounds):
        order = names[round_no:] + names[:round_no]
        for name in order:
            way = "bare" if name == "bare" else "ours"
            result = run_once(
                app,
                way,
                base_env,
                stock_bin,
                args.duration,
                lua,
                extra_env=KNOBS.get(name),
                log_dir=tmp,
            )
            runs.setdefault(name, []).append(result)
            say(f"knobs round {round_no + 1} {name:50} {result}")
    print(
        f"| {app.name} under otel-tdd run, one knob at a time | req/s | ratio to bare "
        "| µs added per request | CPU µs per request | CPU µs added | p99 ms |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in names:
        pairs = list(zip(runs[name], runs["bare"], strict=True))
        ratios = [r.rps / b.rps for r, b in pairs]
        added = [1e6 / r.rps - 1e6 / b.rps for r, b in pairs]
        cpu_added = [r.cpu_us - b.cpu_us for r, b in pairs]
        print(
            f"| {name} | {med([r.rps for r in runs[name]]):,.0f} | {med(ratios):.2f} "
            f"| {med(added):+.0f} | {med([r.cpu_us for r in runs[name]]):,.0f} "
            f"| {med(cpu_added):+,.0f} | {med([r.p99_ms for r in runs[name]]):.2f} |"
        )
    print()


if __name__ == "__main__":
    raise SystemExit(main())
