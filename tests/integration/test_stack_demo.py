"""``./dev demo``'s driver (examples/stack_demo.py) against a real stack, run twice, then down.

On free ports in a temporary state dir (``--dir``, ``--free-ports``), with CI=true
and no stdin as in CI: the first run starts every component, the second reuses
them; each ends with ``otel-tdd trace`` of a request of the app, the URLs and the
command that stops the stack, which then leaves nothing of it running.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from run_helpers import EXAMPLES, REPO, clean_env
from test_stack_stores import processes_with_id

from otel_tdd.stack import process
from otel_tdd.stack.local import LocalStack

pytestmark = pytest.mark.integration

COMPONENTS = {"collector", "prometheus", "alertmanager", "victoria-logs", "jaeger"}


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "stack"
    yield directory
    LocalStack(directory).down()  # whatever the test left: stopped by pid


def demo(state_dir: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(EXAMPLES / "stack_demo.py"), "--dir", str(state_dir)]
    done = subprocess.run(
        [*argv, "--free-ports", "--epics", "1", "--tasks", "1"],
        env=clean_env({"CI": "true", "NO_COLOR": "1"}),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def check_walk(done: subprocess.CompletedProcess[str], state_dir: Path) -> None:
    """The trace of one request (spans and records), the URLs and the stop command."""
    shown = re.search(r"otel-tdd trace ([0-9a-f]{32})", done.stderr)
    assert shown, done.stderr
    trace_id = shown.group(1)
    header = re.search(rf"^trace {trace_id}  (\d+) spans .* (\d+) log records$", done.stdout, re.M)
    assert header, done.stdout
    assert int(header.group(1)) >= 2 and int(header.group(2)) >= 2, header.group(0)
    urls = LocalStack(state_dir).urls
    for label, url in (
        ("Prometheus", urls["prometheus"]),
        ("Alertmanager", urls["alertmanager"]),
        ("VictoriaLogs UI", urls["victoria_logs_ui"]),
        ("Jaeger API", f"{urls['jaeger']}/api/v3/traces/{trace_id}"),
    ):
        assert re.search(rf"^  {label} +{re.escape(url)}$", done.stderr, re.M), done.stderr
    assert f"stack down --dir {state_dir}" in done.stderr, done.stderr


def test_the_demo_starts_the_stack_shows_a_trace_reuses_it_and_down_stops_all(
    state_dir: Path,
) -> None:
    first = demo(state_dir)
    for name in COMPONENTS:
        assert re.search(rf"^{name} +ready in", first.stderr, re.M), first.stderr
    check_walk(first, state_dir)
    pids = LocalStack(state_dir).pids
    assert set(pids) == COMPONENTS

    second = demo(state_dir)
    for name in COMPONENTS:
        assert f"already running (pid {pids[name]})" in second.stderr, second.stderr
    check_walk(second, state_dir)

    stack_id = (state_dir / ".stack-id").read_text().strip()
    down = subprocess.run(
        [sys.executable, "-m", "otel_tdd.cli", "stack", "down", "--dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert down.returncode == 0, down.stdout + down.stderr
    assert process.wait_until(lambda: not processes_with_id(stack_id), timeout=10), (
        f"still running: {processes_with_id(stack_id)}"
    )
