"""`otel-tdd stack up` with the trace and log stores: VictoriaLogs and Jaeger v2 as components.

The real binaries (built and cached by `otel-tdd stores build`, which `up` runs),
on free 127.0.0.1 ports with their data in the state directory; Prometheus
scrapes both; `down` stops them by pid and nothing of the stack stays running.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_tdd.stack import process
from otel_tdd.stack.local import LocalStack

pytestmark = pytest.mark.integration

STORES = ("victoria-logs", "jaeger")


def run_cli(*args: str, state_dir: Path) -> tuple[int, str]:
    """``otel-tdd stack ARGS`` as a user runs it: a separate process; rc and stdout+stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "otel_tdd.cli", "stack", *args, "--dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=1800,  # a cold Jaeger build takes minutes; a cached one is instant
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def processes_with_id(stack_id: str) -> list[int]:
    """Every live process carrying this state dir's OTEL_TDD_STACK_ID: what `up` started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"OTEL_TDD_STACK_ID={stack_id}".encode() in environ and process.is_running(
            int(entry.name)
        ):
            found.append(int(entry.name))
    return found


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "stack"
    yield directory
    LocalStack(directory).down()


def wait_up(stack: LocalStack, job: str, timeout: float = 60.0) -> float | None:
    """``up{job=JOB}`` once Prometheus has scraped it (None until then)."""
    deadline = time.monotonic() + timeout
    while True:
        result = stack.query(f'up{{job="{job}"}}')
        if result or time.monotonic() > deadline:
            return float(result[0]["value"][1]) if result else None
        time.sleep(1)


def test_up_starts_the_stores_prometheus_scrapes_them_and_down_leaves_nothing(
    state_dir: Path,
) -> None:
    code, out = run_cli("up", "--free-ports", state_dir=state_dir)
    assert code == 0, out
    for name in STORES:
        assert f"{name:<13} ready in" in out, out
    assert "VictoriaLogs UI" in out and "/select/vmui/" in out, out
    assert "Jaeger query API" in out, out

    code, out = run_cli("status", state_dir=state_dir)
    assert code == 0, out
    stack = LocalStack(state_dir)
    pids = stack.pids
    for name in STORES:
        row = next(line for line in out.splitlines() if line.startswith(name))
        assert str(pids[name]) in row and "running" in row and "ready" in row, out

    # Data in the state directory, each store on loopback only.
    assert any((state_dir / "victoria-logs" / "data").iterdir())
    assert (state_dir / "jaeger" / "data" / "badger_store" / "keys").is_dir()
    for name in STORES:
        cmdline = " ".join(process.read_cmdline(pids[name]) or [])
        assert "0.0.0.0" not in cmdline and str(state_dir) in cmdline, cmdline

    # The Collector was told where they are.
    env = (state_dir / "collector" / "env").read_text()
    assert f"OTELCOL_LOGS_STORE_ENDPOINT={stack.urls['victoria_logs']}\n" in env
    assert "OTELCOL_TRACES_STORE_ENDPOINT=127.0.0.1:" in env
    assert f"OTELCOL_QUEUE_DIR={state_dir / 'collector' / 'queue'}\n" in env

    # Prometheus scrapes both stores' /metrics.
    assert wait_up(stack, "victorialogs") == 1.0
    assert wait_up(stack, "jaeger") == 1.0

    stack_id = (state_dir / ".stack-id").read_text().strip()
    assert set(processes_with_id(stack_id)) >= set(pids.values())
    code, out = run_cli("down", state_dir=state_dir)
    assert code == 0, out
    for name in STORES:
        assert f"{name:<13} stopped (pid {pids[name]})" in out, out
    assert process.wait_until(lambda: not processes_with_id(stack_id), timeout=10), (
        f"still running: {processes_with_id(stack_id)}"
    )
    assert not (state_dir / "state.json").exists()


def test_without_stores_runs_the_core_stack_and_the_collector_writes_files(
    state_dir: Path,
) -> None:
    code, out = run_cli("up", "--free-ports", "--without-stores", state_dir=state_dir)
    assert code == 0, out
    assert set(LocalStack(state_dir).pids) == {"collector", "prometheus", "alertmanager"}
    assert not any(f"{name:<13} ready in" in out for name in STORES), out
    assert "VictoriaLogs" not in out and "Jaeger" not in out, out
    env = (state_dir / "collector" / "env").read_text()
    assert "OTELCOL_LOGS_STORE_ENDPOINT" not in env and "OTELCOL_TRACES_STORE_ENDPOINT" not in env
    assert f"OTELCOL_FILE_DIR={state_dir / 'collector' / 'data'}\n" in env
    code, out = run_cli("down", state_dir=state_dir)
    assert code == 0, out
