"""``./dev demo``: the local stack with its stores, the example app against it, then the walk.

1. ``otel-tdd stack up`` (Collector, Prometheus, Alertmanager, VictoriaLogs, Jaeger;
   builds cached, progress lines; an already running stack is reused);
2. ``examples/tdd_app.py`` sending all three signals to that Collector (its JSON
   lines on stdout, as without the stack);
3. ``otel-tdd trace`` for the request with the most log lines, once both stores
   hold it, then the URLs to open. The stack keeps running: ``otel-tdd stack down``.

Arguments other than ``--dir`` and ``--free-ports`` (what the tests use) go to
tdd_app.py (``--epics 5``...).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from otel_tdd import stores_query as q
from otel_tdd.stack.config import ENV_DIR, default_state_dir
from otel_tdd.stack.view import StackView

HERE = Path(__file__).resolve().parent
OTEL_TDD = [sys.executable, "-m", "otel_tdd.cli"]
WAIT_S = 60.0  # for the stores to hold the trace: the Collector batches, then retries


def say(text: str) -> None:
    sys.stdout.flush()  # the app's lines and `otel-tdd trace` go to stdout: keep the order
    print(f"\033[1m==> {text}\033[0m" if sys.stderr.isatty() else f"==> {text}", file=sys.stderr)


def shown_command(*args: str) -> str:
    """How the user runs otel-tdd here: the venv's script when it is not on PATH."""
    script = Path(sys.executable).parent / "otel-tdd"
    on_path = any(
        (Path(d) / "otel-tdd").resolve() == script.resolve()
        for d in os.environ.get("PATH", "").split(os.pathsep)
        if d and (Path(d) / "otel-tdd").exists()
    )
    prefix = "otel-tdd" if on_path else os.path.relpath(script)
    return " ".join([prefix, *args])


def shown_path(path: Path) -> str:
    """``path`` relative to here when it is below, else absolute."""
    return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)


def run_streamed(argv: list[str]) -> tuple[int, str]:
    """Run ``argv``, its output passed to stderr line by line (a cold build's progress lines
    while they come) and kept; (exit code, output)."""
    seen: list[str] = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # a pipe: without it, lines come at exit
    with subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stderr.write(line)
            seen.append(line)
    return proc.returncode, "".join(seen)


def stack_up(state_dir: Path, free_ports: bool) -> None:
    """``otel-tdd stack up``; on the standard ports, else (one taken) on free ones."""
    base = [*OTEL_TDD, "stack", "up", "--dir", str(state_dir)]
    if not free_ports:
        code, output = run_streamed(base)
        if code == 0:
            return
        if "is in use" not in output:
            raise SystemExit(f"stack_demo: `otel-tdd stack up` failed (exit {code})")
        say("a standard port is taken on this machine: starting the stack on free ports instead")
    code, _ = run_streamed([*base, "--free-ports"])
    if code != 0:
        raise SystemExit(f"stack_demo: `otel-tdd stack up --free-ports` failed (exit {code})")


def run_app(view: StackView, app_args: list[str]) -> dict[str, list[str]]:
    """tdd_app.py against the stack, its stdout passed through; messages by trace id."""
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": view.otlp_http_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TDD_ALERTMANAGER_URL": view.alertmanager_url,
    }
    argv = [sys.executable, str(HERE / "tdd_app.py"), *app_args]
    by_trace: dict[str, list[str]] = {}
    with subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
    ) as app:
        assert app.stdout is not None
        for line in app.stdout:
            sys.stdout.write(line)
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("trace_id"):
                by_trace.setdefault(str(record["trace_id"]), []).append(str(record["message"]))
    if app.returncode != 0:
        raise SystemExit(f"stack_demo: the example app exited {app.returncode}")
    return by_trace


def wait_for_stores(view: StackView, trace_id: str, records: int) -> bool:
    """Until Jaeger has the trace and VictoriaLogs its ``records``; False after WAIT_S."""
    urls = view.urls
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            spans = q.fetch_trace(urls["jaeger"], trace_id)
            logs = q.fetch_logs(urls["victoria_logs"], q.logsql(trace_id=trace_id))
            if spans and len(logs) >= records:
                return True
        except q.StoreQueryError:
            pass  # not there yet: the Collector sends in batches
        time.sleep(0.5)
    return False


def print_walk(view: StackView, state_dir: Path, trace_id: str) -> None:
    urls = view.urls
    dir_args = [] if state_dir == default_state_dir() else ["--dir", str(state_dir)]
    env = {**os.environ, ENV_DIR: str(state_dir)}
    say(f"{shown_command('trace', trace_id)}   # the request with the most log lines")
    subprocess.run([*OTEL_TDD, "trace", trace_id], env=env, check=False)
    sys.stdout.flush()
    rows = [
        ("Prometheus", urls["prometheus"]),
        ("Alertmanager", urls["alertmanager"]),
        ("VictoriaLogs UI", urls["victoria_logs_ui"]),
        ("Jaeger API", f"{urls['jaeger']}/api/v3/traces/{trace_id}"),
    ]
    print("\nOpen:", file=sys.stderr)
    for label, url in rows:
        print(f"  {label:<16} {url}", file=sys.stderr)
    print("\nMore of the walk:", file=sys.stderr)
    for args, why in (
        (["logs", "--trace", trace_id], "that request's records"),
        (["traces", "--service", "tdd-app"], "the app's recent traces"),
    ):
        print(f"  {shown_command(*args):<72} # {why}", file=sys.stderr)
    print(
        f"\nYour own app: export OTEL_EXPORTER_OTLP_ENDPOINT={view.otlp_http_endpoint}"
        f"\nThe stack keeps running; stop it with: {shown_command('stack', 'down', *dir_args)}",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dir", help=f"the stack's state dir (default: ${ENV_DIR} or ./.otel-tdd/stack)"
    )
    parser.add_argument("--free-ports", action="store_true", help="not the standard ports")
    args, app_args = parser.parse_known_args(argv)
    state_dir = default_state_dir(args.dir)
    say(f"starting the local stack in {shown_path(state_dir)} (otel-tdd stack up)")
    stack_up(state_dir, args.free_ports)
    view = StackView(state_dir)
    say(f"running examples/tdd_app.py against it ({view.otlp_http_endpoint})")
    by_trace = run_app(view, app_args)
    if not by_trace:
        raise SystemExit("stack_demo: the example app wrote no line with a trace_id")
    counts = Counter({trace: len(messages) for trace, messages in by_trace.items()})
    trace_id = counts.most_common(1)[0][0]
    say("waiting for the stores to hold that request (the Collector sends in batches)")
    if not wait_for_stores(view, trace_id, counts[trace_id]):
        logs = shown_command("stack", "logs", "collector")
        say(f"the stores do not hold trace {trace_id} yet; see `{logs}`")
    print_walk(view, state_dir, trace_id)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
