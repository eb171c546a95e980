"""``otel-tdd run`` as a process: what the command sees, and what the wrapper passes through.

Each test starts the real wrapper (``.venv/bin/otel-tdd run ...``), which execs
the real command with our sitecustomize on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from run_helpers import (
    FLUSH_ONLY_AT_EXIT,
    OTEL_TDD,
    REPO,
    clean_env,
    running,
)

from otel_tdd.auto.run import SITECUSTOMIZE_DIR

pytestmark = pytest.mark.integration

# A script that reports, from its first line, what the wrapper set up before it.
PROBE = """
import json, logging, os, signal, sys
from otel_tdd import _runtime
runtime = _runtime.RUNTIME
root = logging.getLogger()
print(json.dumps({
    "probe": True,
    "configured_before_user_code": runtime is not None,
    "service_name": runtime.settings.service_name if runtime else None,
    "metrics_exporters": list(runtime.settings.metrics_exporters) if runtime else None,
    "ops_port": runtime.settings.ops_port if runtime else None,
    "handlers": [type(h).__name__ for h in root.handlers],
    "sigterm": getattr(signal.getsignal(signal.SIGTERM), "__qualname__", None),
    "pid": os.getpid(),
    "pythonpath": os.environ.get("PYTHONPATH", ""),
    "instrumentation_loaded": sorted(
        m for m in sys.modules if m.startswith("opentelemetry.instrumentation.")
        and m.count(".") == 2
    ),
}), flush=True)
"""


def run(
    args: list[str], *, env: dict[str, str] | None = None, cwd: Path = REPO, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OTEL_TDD, "run", *args],
        env=env or clean_env(),
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def probe_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    for line in result.stdout.splitlines():
        if line.startswith('{"probe"'):
            return dict(json.loads(line))
    raise AssertionError(f"no probe line\nstdout={result.stdout}\nstderr={result.stderr}")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# --- what the command sees ---------------------------------------------------------------------


def test_python_script_is_configured_before_its_first_line(tmp_path: Path) -> None:
    script = write(tmp_path / "app.py", PROBE)
    result = run(["--service-name", "probe-app", "python", str(script)])
    assert result.returncode == 0, result.stderr
    probe = probe_of(result)
    assert probe["configured_before_user_code"]
    assert probe["service_name"] == "probe-app"
    assert "JsonLogHandler" in probe["handlers"]
    assert probe["pythonpath"].split(os.pathsep)[0] == SITECUSTOMIZE_DIR


def test_python_dash_m_keeps_the_users_pythonpath(tmp_path: Path) -> None:
    write(tmp_path / "src" / "probepkg" / "__init__.py", "")
    write(tmp_path / "src" / "probepkg" / "__main__.py", PROBE)
    env = clean_env({"PYTHONPATH": str(tmp_path / "src")})
    result = run(["python", "-m", "probepkg"], env=env)
    assert result.returncode == 0, result.stderr
    probe = probe_of(result)
    assert probe["configured_before_user_code"]
    assert probe["pythonpath"].split(os.pathsep) == [SITECUSTOMIZE_DIR, str(tmp_path / "src")]


def test_console_script_gets_the_same_setup(tmp_path: Path) -> None:
    """A console script (here flask's) is a Python process like any other."""
    write(tmp_path / "probe_app.py", PROBE + "\nfrom flask import Flask\napp = Flask('probe')\n")
    result = run(["flask", "--app", str(tmp_path / "probe_app.py"), "routes"])
    assert result.returncode == 0, result.stderr
    probe = probe_of(result)
    assert probe["configured_before_user_code"]
    assert "/static" in result.stdout  # flask's own output passes through


def test_a_shadowed_sitecustomize_still_runs_first(tmp_path: Path) -> None:
    write(
        tmp_path / "site_dir" / "sitecustomize.py",
        "import os\nos.environ['SHADOWED_SITECUSTOMIZE_RAN'] = 'yes'\n",
    )
    script = write(
        tmp_path / "app.py",
        "import os\nfrom otel_tdd import _runtime\n"
        "print(os.environ.get('SHADOWED_SITECUSTOMIZE_RAN'), _runtime.RUNTIME is not None)\n",
    )
    env = clean_env({"PYTHONPATH": str(tmp_path / "site_dir")})
    result = run(["python", str(script)], env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "yes True"


# Work under the options' settings: one span with a record and a counter inside it,
# then the ops server asked on the port it really bound (--ops-port 0: any free one).
OPTIONS_APP = """
import json, logging, urllib.request
from opentelemetry import trace
from otel_tdd import _runtime
from otel_tdd.metrics import catalog
with trace.get_tracer("options-app").start_as_current_span("work") as span:
    logging.getLogger("options-app").info("did the work")
    catalog.epics_created.add(1, {"project_type": "web"})
ops = _runtime.RUNTIME.ops_server
with urllib.request.urlopen(ops.url + "/health/live", timeout=5) as answer:
    live = answer.status
print(json.dumps({"options": True, "sampled": span.get_span_context().trace_flags.sampled,
                  "recording": span.is_recording(), "ops_port": ops.port, "live": live}))
"""


def test_options_map_onto_the_standard_variables(collector: Any, tmp_path: Path) -> None:
    script = write(tmp_path / "app.py", PROBE + OPTIONS_APP)
    result = run(
        ["--service-name", "options-app", "--exporter", "otlp",
         "--endpoint", collector.otlp_http_endpoint, "--ops-port", "0",
         "--sampler", "always_off", "python", str(script)]
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    probe = probe_of(result)
    assert probe["service_name"] == "options-app"
    assert probe["metrics_exporters"] == ["prometheus", "otlp"]
    effect = next(json.loads(line) for line in result.stdout.splitlines() if '"options"' in line)
    # --sampler always_off: the span exists for correlation but is neither sampled nor recorded.
    assert effect["sampled"] is False and effect["recording"] is False
    # --ops-port 0: the server bound a real port and answered.
    assert effect["ops_port"] > 0 and effect["live"] == 200

    # --exporter otlp and --endpoint: logs and metrics reached this Collector under
    # --service-name's service.name; no span did (none was sampled).
    def ours(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [i for i in items if i["resource"].get("service.name") == "options-app"]

    logs = collector.wait_for(
        lambda: [r for r in ours(collector.logs()) if r["body"] == "did the work"], 30, "the record"
    )
    assert logs[0]["trace_id"]  # an unsampled trace still correlates its records
    collector.wait_for(
        lambda: [m for m in ours(collector.metrics()) if m["name"] == "tdd_epics_created_total"],
        30,
        "the counter",
    )
    assert ours(collector.spans()) == []


def test_sampler_arg_and_console_exporter_take_effect(tmp_path: Path) -> None:
    script = write(
        tmp_path / "app.py",
        """
        from opentelemetry import trace
        tracer = trace.get_tracer("ratio-app")
        sampled = 0
        for _ in range(400):
            with tracer.start_as_current_span("ratio-span") as span:
                sampled += span.get_span_context().trace_flags.sampled
        print(f"sampled {sampled}", flush=True)
        """,
    )
    result = run(
        ["--exporter", "console", "--sampler", "traceidratio", "--sampler-arg", "0.5",
         "python", str(script)]
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("sampled ")]
    sampled = int(line.split()[1])
    # Binomial(400, 0.5): sd = 10; 140..260 is 6 sd either side.
    assert 140 <= sampled <= 260, sampled
    # --exporter console: the SDK's console exporter printed exactly the sampled spans.
    assert result.stdout.count('"name": "ratio-span"') == sampled


def test_instrumentors_load_when_their_library_is_imported(tmp_path: Path) -> None:
    script = write(
        tmp_path / "app.py",
        PROBE
        + textwrap.dedent(
            """
            import flask, requests
            from opentelemetry.instrumentation.flask import FlaskInstrumentor
            from opentelemetry.instrumentation.requests import RequestsInstrumentor
            print("flask", FlaskInstrumentor().is_instrumented_by_opentelemetry)
            print("requests", RequestsInstrumentor().is_instrumented_by_opentelemetry)
            print("logging", any(type(h).__name__ == "LoggingHandler"
                                 for h in logging.getLogger().handlers))
            """
        ),
    )
    result = run(["python", str(script)])
    assert result.returncode == 0, result.stderr
    # Nothing imported, nothing paid; except urllib's instrumentor when installed:
    # prometheus_client (behind /metrics) imports urllib.request at every start.
    urllib_and_its_base = {
        f"opentelemetry.instrumentation.{name}"
        for name in ("urllib", "_semconv", "dependencies", "instrumentor", "utils")
    }
    assert set(probe_of(result)["instrumentation_loaded"]) <= urllib_and_its_base
    lines = result.stdout.splitlines()
    assert "flask True" in lines and "requests True" in lines
    # Our JSON pipeline captures stdlib logging: no second OTLP handler from the
    # logging instrumentor.
    assert "logging False" in lines

    disabled = clean_env({"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "flask"})
    result = run(["python", str(script)], env=disabled)
    assert "flask False" in result.stdout.splitlines()
    assert "requests True" in result.stdout.splitlines()


def test_plain_opentelemetry_instrument_picks_up_our_defaults(tmp_path: Path) -> None:
    script = write(tmp_path / "app.py", PROBE)
    result = subprocess.run(
        [str(Path(OTEL_TDD).with_name("opentelemetry-instrument")), "python", str(script)],
        env=clean_env({"OTEL_SERVICE_NAME": "via-opentelemetry-instrument"}),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    probe = probe_of(result)
    assert probe["configured_before_user_code"]
    assert probe["service_name"] == "via-opentelemetry-instrument"
    assert "JsonLogHandler" in probe["handlers"]


# --- what passes through ---------------------------------------------------------------------


def test_exit_code_stdin_stdout_stderr_and_pid_are_the_commands(tmp_path: Path) -> None:
    script = write(
        tmp_path / "app.py",
        """
        import os, sys
        line = sys.stdin.readline().strip()
        print(f"got {line} as {os.getpid()}")
        print("to stderr", file=sys.stderr)
        sys.exit(7)
        """,
    )
    proc = subprocess.Popen(
        [OTEL_TDD, "run", "python", str(script)],
        env=clean_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate("hello\n", timeout=60)
    assert proc.returncode == 7
    assert f"got hello as {proc.pid}" in out  # exec: the wrapper's pid is the command's
    assert "to stderr" in err


def test_sigterm_reaches_the_command_and_the_last_records_are_flushed(
    collector: Any, tmp_path: Path
) -> None:
    script = write(
        tmp_path / "worker.py",
        """
        import logging, time
        from opentelemetry import trace
        log = logging.getLogger("worker")
        tracer = trace.get_tracer("worker")
        print("ready", flush=True)
        n = 0
        while True:
            with tracer.start_as_current_span("work item"):
                n += 1
                log.info("item %d done", n)
            time.sleep(0.05)
        """,
    )
    argv = [OTEL_TDD, "run", "--service-name", "sigterm-worker",
            "--endpoint", collector.otlp_http_endpoint, "python", str(script)]  # fmt: skip
    with running(argv, clean_env(FLUSH_ONLY_AT_EXIT), tmp_path, "worker") as worker:
        deadline = time.monotonic() + 30
        while "ready" not in worker.stdout_path.read_text():
            assert time.monotonic() < deadline and worker.proc.poll() is None, worker.output()
            time.sleep(0.05)
        time.sleep(1.0)  # some work items, none exported yet
        assert not [s for s in collector.spans() if s["service_name"] == "sigterm-worker"]
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.proc.wait(30) == 0, worker.output()
        done = [r for r in worker.json_lines() if r.get("logger") == "worker"]
    assert done, worker.output()

    def spans() -> list[dict[str, Any]]:
        found = [s for s in collector.spans() if s["service_name"] == "sigterm-worker"]
        return found if len([s for s in found if s["name"] == "work item"]) >= len(done) else []

    exported = collector.wait_for(spans, 20, "every work item")
    # GracefulShutdown's own span and records are exported too: the flush came last.
    assert any(s["name"] == "graceful_shutdown" for s in exported)
    wanted = {f"item {len(done)} done", "Graceful shutdown started"}

    def logs() -> set[str]:
        # Waited for like the spans: the Collector writes each signal's file on its own
        # batch timer, so the records can land a moment after the spans.
        bodies = {r["body"] for r in collector.logs() if r["service_name"] == "sigterm-worker"}
        return bodies if wanted <= bodies else set()

    assert wanted <= collector.wait_for(logs, 20, "the last records")


def test_sigterm_during_busy_work_exits_0_with_nothing_lost(collector: Any, tmp_path: Path) -> None:
    """The main thread ends a span every millisecond: before the fix, one ended after the
    final flush had shut the tracer provider down, was counted lost, and the exit was 1."""
    script = write(
        tmp_path / "busy.py",
        """
        import time
        from opentelemetry import trace
        tracer = trace.get_tracer("busy")
        print("ready", flush=True)
        while True:
            with tracer.start_as_current_span("tick"):
                time.sleep(0.0005)
        """,
    )
    argv = [OTEL_TDD, "run", "--service-name", "busy-worker",
            "--endpoint", collector.otlp_http_endpoint, "python", str(script)]  # fmt: skip
    for round_ in range(3):
        with running(argv, clean_env(), tmp_path, f"busy{round_}") as worker:
            deadline = time.monotonic() + 30
            while "ready" not in worker.stdout_path.read_text():
                assert time.monotonic() < deadline and worker.proc.poll() is None, worker.output()
                time.sleep(0.05)
            time.sleep(0.5)
            worker.proc.send_signal(signal.SIGTERM)
            assert worker.proc.wait(30) == 0, worker.output()
            assert "telemetry was lost" not in worker.stderr_path.read_text(), worker.output()


def test_sigint_is_left_to_python_a_keyboard_interrupt(tmp_path: Path) -> None:
    """Only SIGTERM is taken (and only when unhandled): Ctrl-C behaves as without us."""
    script = write(
        tmp_path / "app.py",
        """
        import time
        try:
            print("ready", flush=True)  # inside the try: a SIGINT right after it is caught too
            time.sleep(60)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            raise
        """,
    )
    proc = subprocess.Popen(
        [OTEL_TDD, "run", "python", str(script)], env=clean_env(), stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert "interrupted" in out
    # Python re-raises an uncaught KeyboardInterrupt as SIGINT: the shell sees Ctrl-C.
    assert proc.returncode == -signal.SIGINT


# --- the wrapper's own errors ------------------------------------------------------------------


def test_a_bad_setting_fails_before_user_code_naming_the_variable(tmp_path: Path) -> None:
    script = write(tmp_path / "app.py", "print('user code ran')\n")
    result = run(["--ops-port", "http", "python", str(script)])
    assert result.returncode == 2
    assert "OTEL_TDD_OPS_PORT='http' is invalid" in result.stderr
    assert "user code ran" not in result.stdout


def test_a_subprocess_with_a_bad_setting_runs_uninstrumented(tmp_path: Path) -> None:
    """Only the command otel-tdd run started fails fast; its children keep working."""
    script = write(
        tmp_path / "app.py",
        """
        import os, subprocess, sys
        env = dict(os.environ, OTEL_TRACES_SAMPLER="nonsense")
        child = subprocess.run([sys.executable, "-c", "print('child ran')"], env=env,
                               capture_output=True, text=True)
        print(child.returncode, child.stdout.strip(), "OTEL_TRACES_SAMPLER" in child.stderr)
        """,
    )
    result = run(["python", str(script)])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "0 child ran True"


def test_an_interpreter_without_otel_tdd_runs_the_program_and_says_why(tmp_path: Path) -> None:
    base_python = Path(sys.base_prefix) / "bin" / "python3"
    script = write(tmp_path / "app.py", "print('still ran')\n")
    result = run([str(base_python), str(script)], cwd=tmp_path)
    assert result.returncode == 0
    assert "still ran" in result.stdout
    assert "cannot import otel_tdd" in result.stderr


def test_usage_errors(tmp_path: Path) -> None:
    assert run([]).returncode == 2
    unknown = run(["--colour", "red", "python", "-c", "pass"])
    assert unknown.returncode == 2 and "unknown option '--colour'" in unknown.stderr
    missing = run(["definitely-not-a-command-here"])
    assert missing.returncode == 127 and "command not found" in missing.stderr


def test_help_lists_the_options_and_our_knobs() -> None:
    result = run(["--help"])
    assert result.returncode == 0
    for text in ("--service-name", "OTEL_SERVICE_NAME", "--exporter", "--endpoint",
                 "OTEL_EXPORTER_OTLP_ENDPOINT", "--ops-port", "--sampler",
                 "OTEL_TDD_OPS_PORT", "OTEL_TDD_LOG_LEVEL"):  # fmt: skip
        assert text in result.stdout, text


def test_options_after_the_command_belong_to_the_command(tmp_path: Path) -> None:
    script = write(tmp_path / "app.py", "import sys\nprint(sys.argv[1:])\n")
    result = run(["python", str(script), "--help", "--service-name", "x"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "['--help', '--service-name', 'x']"


def test_the_exit_path_says_in_one_line_when_telemetry_was_lost() -> None:
    """Spans pushed out of a full queue are lost: the wrapped process says so as it exits."""
    script = "from opentelemetry import trace\nt = trace.get_tracer('x')\n" + (
        "for i in range(200):\n    t.start_span(f's{i}').end()\n"
    )
    result = run(
        ["python", "-c", script],
        env=clean_env(
            {
                "OTEL_SERVICE_NAME": "lossy",
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_METRICS_EXPORTER": "none",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",  # discard: refused
                "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
                "OTEL_BSP_MAX_QUEUE_SIZE": "2",
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2",
                "OTEL_BSP_SCHEDULE_DELAY": "600000",
                "OTEL_TDD_LOG_STREAM": "none",
            }
        ),
    )
    lines = [line for line in result.stderr.splitlines() if "telemetry was lost" in line]
    assert len(lines) == 1, result.stderr
    assert "traces" in lines[0]
