"""configure(ops_port=...), then os.fork(): the child can still stop.

The ops server's selector thread (and the Alertmanager sender) live in the
parent only. Before, the child's shutdown() waited forever for the parent's
thread, and SIGTERM under GracefulShutdown never ended the child. This holds
for plain configure(), not only under ``otel-tdd run``.

Each case runs a real Python process that forks; the parent reports how its
child ended, and the test bounds everything by time and kills leftovers by pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.integration

BOUND_S = 5.0

PRELUDE = """
import json, os, signal, sys, time, urllib.request
import otel_tdd
otel_tdd.configure("forker", ops_port=0, log_stream="none")
server = otel_tdd._runtime.current().ops_server
"""

PLAIN_SHUTDOWN = """
pid = os.fork()
if pid == 0:
    started = time.monotonic()
    clean = otel_tdd.shutdown()
    print(json.dumps({"child_shutdown_s": time.monotonic() - started}), flush=True)
    os._exit(0)
deadline = time.monotonic() + BOUND
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    time.sleep(0.05)
else:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    print(json.dumps({"child": "hung"}), flush=True)
    sys.exit(0)
# The parent still serves its probes after the child stopped.
with urllib.request.urlopen(server.url + "/health/live", timeout=5) as response:
    print(json.dumps({"parent_live": response.status}), flush=True)
otel_tdd.shutdown()
"""

SIGTERM_GRACEFUL = """
pid = os.fork()
if pid == 0:
    from otel_tdd.graceful_shutdown import GracefulShutdown
    GracefulShutdown(flush_timeout_s=2).install_signal_handlers()
    print(json.dumps({"child_ready": True}), flush=True)
    while True:
        time.sleep(0.1)
time.sleep(0.5)
os.kill(pid, signal.SIGTERM)
deadline = time.monotonic() + BOUND
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print(json.dumps({"child_exit": os.waitstatus_to_exitcode(status)}), flush=True)
        break
    time.sleep(0.05)
else:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    print(json.dumps({"child": "hung"}), flush=True)
otel_tdd.shutdown()
"""


def run_forker(body: str) -> list[dict[str, object]]:
    script = PRELUDE + f"BOUND = {BOUND_S}\n" + textwrap.dedent(body)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST"))}
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = process.communicate(timeout=BOUND_S * 4)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"the forking process hung\nstdout={out}\nstderr={err}")
    assert process.returncode == 0, err
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_a_forked_childs_shutdown_returns_promptly_and_the_parent_keeps_its_probes() -> None:
    events = run_forker(PLAIN_SHUTDOWN)
    assert {"child": "hung"} not in events, events
    (child,) = [e for e in events if "child_shutdown_s" in e]
    assert float(child["child_shutdown_s"]) < BOUND_S  # type: ignore[arg-type]
    assert {"parent_live": 200} in events


def test_sigterm_ends_a_forked_child_under_graceful_shutdown() -> None:
    events = run_forker(SIGTERM_GRACEFUL)
    assert {"child": "hung"} not in events, events
    assert {"child_ready": True} in events  # the child got as far as waiting for SIGTERM
    (child,) = [e for e in events if "child_exit" in e]
    assert child["child_exit"] in (0, 1)  # ended by our handler, clean or not


def test_configure_registers_one_fork_hook_per_process_and_holds_no_pipeline() -> None:
    """Reconfiguring 50 times must not keep 100 pipeline steps alive through register_at_fork."""
    script = textwrap.dedent(
        """
        import gc
        import otel_tdd
        from otel_tdd import _runtime
        from otel_tdd.logs.steps import AddContext
        for i in range(50):
            otel_tdd.configure("x", log_stream="none")
            otel_tdd.shutdown()
        _runtime.install(None)
        gc.collect()
        print(sum(isinstance(o, AddContext) for o in gc.get_objects()))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST"))}
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip().splitlines()[-1]) == 0, result.stdout
