"""The benchmarks still run: each one's smoke mode exits 0 and prints its table.

No timing is asserted (these machines are shared and noisy); the figures live in
docs/benchmarks.md with the commands that produce them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run_benchmark(script: str, timeout_s: float, *extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    tail = done.stderr[-3000:]
    assert done.returncode == 0, f"{script} --quick exited {done.returncode}:\n{tail}"
    return done.stdout


def test_overhead_benchmark_smoke_run_prints_its_table() -> None:
    out = run_benchmark("overhead.py", 300)
    assert "| what | reference | ours µs | ref µs | ratio (median) | target | |" in out
    assert "| `@performance_tracked`" in out or "| performance_tracked, sampled |" in out


def test_pipeline_throughput_smoke_run_prints_its_table_with_nothing_lost_uncounted() -> None:
    out = run_benchmark("pipeline_throughput.py", 180)
    assert "| signal | target /s | sent | achieved /s | received by the Collector |" in out
    rows = [line for line in out.splitlines() if line.startswith(("| spans |", "| log records |"))]
    assert len(rows) == 2, out


def test_pipeline_throughput_stores_smoke_run_reads_every_item_back_from_the_stores() -> None:
    # Exit 0 means nothing lost or doubled; the rows say so too, read back from the stores.
    out = run_benchmark("pipeline_throughput.py", 300, "--stores", "--rate", "200")
    header = (
        "| signal | target /s | sent | achieved /s | received by the Collector | "
        "stored and read back | duplicated | lost | stored /s |"
    )
    assert header in out, out
    for signal in ("spans", "log records"):
        (row,) = [line for line in out.splitlines() if line.startswith(f"| {signal} |")]
        cells = [cell.strip().replace(",", "") for cell in row.strip("|").split("|")]
        sent, received, stored, duplicated, lost = map(int, [cells[2], *cells[4:8]])
        assert sent > 0 and received == stored == sent, row
        assert (duplicated, lost) == (0, 0), row


def test_startup_smoke_run_prints_its_table_and_ratio() -> None:
    out = run_benchmark("startup.py", 180)
    assert "| command | median ms | p25-p75 ms | adds to python -c pass |" in out
    assert "| otel-tdd run python -c pass |" in out
    assert "otel-tdd run adds" in out


def test_ops_server_wrk_smoke_run_prints_a_row_per_endpoint() -> None:
    out = run_benchmark("ops_server_wrk.py", 120)
    assert "| endpoint | wrk | requests/s | p50 | p99 | errors | app items/s |" in out
    for path in ("/health/live", "/health/ready", "/health", "/metrics"):
        assert f"| `{path}` |" in out, out


def test_gil_wait_smoke_run_prints_each_way() -> None:
    out = run_benchmark("gil_wait.py", 120)
    assert "| export thread | late p50 ms | late p99 ms | late max ms | spans encoded /s |" in out
    for way in ("| nobody encodes |", "| SDK encoding, one go |", "| paced, "):
        assert way in out, out


def test_app_overhead_smoke_run_prints_every_app_way_and_column() -> None:
    # Three servers x six ways x (start + 1 s warm-up + 2 s wrk), then the half-rate runs.
    out = run_benchmark("app_overhead.py", 900)
    header = (
        "| app | run | req/s | ratio to bare | p50 ms | p99 ms | added p50 ms | added p99 ms "
        "| CPU µs/req | CPU µs added | RSS MB | errors |"
    )
    assert header in out, out
    half = (
        "| app | run at half of bare's max | target req/s | reached req/s | p50 ms | p99 ms "
        "| added p99 ms |"
    )
    assert half in out, out
    lines = out.splitlines()
    for app in ("flask", "fastapi", "django"):
        for way in ("bare", "ours", "stock", "logfire", "ours-off", "stock-off"):
            rows = [row for row in lines if row.startswith(f"| {app} | {way} |")]
            # One row in the main table (12 cells); the four loaded ways again in the
            # half-rate table (7 cells). Every cell holds a figure, none is missing.
            half_rate = way in ("bare", "ours", "stock", "logfire")
            assert [row.count("|") for row in rows] == ([13, 8] if half_rate else [13]), out
            for row in rows:
                cells = [cell.strip() for cell in row.strip("|").split("|")]
                assert all(cells) and "nan" not in cells, row
