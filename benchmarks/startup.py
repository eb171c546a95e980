"""Startup cost of ``otel-tdd run`` against plain Python and ``opentelemetry-instrument``.

    .venv/bin/python benchmarks/startup.py              # 40 interleaved rounds (~1 minute)
    .venv/bin/python benchmarks/startup.py --rounds 5   # shorter run
    .venv/bin/python benchmarks/startup.py --quick      # smoke run (CI): 2 rounds, no warm-up

Every round runs each command once, in a rotated order, so load on this shared
machine hits all of them alike; we report medians, the time each adds to plain
``python -c pass``, and the median of the per-round ratios. The target (from the
benchmark issue): what ``otel-tdd run`` adds is at most half of what
``opentelemetry-instrument`` adds. docs/benchmarks.md records the figures.

The commands, all with no OTEL_* variable set (the embedded default: no network):

* ``python -c pass``: the baseline;
* ``otel-tdd run python -c pass``: our wrapper, execs the command; the child
  configures the SDK (providers, JSON logging, Prometheus reader) and arranges
  the instrumentors;
* ``opentelemetry-instrument python -c pass``, stock: the distro and configurator
  entry points point elsewhere (``OTEL_PYTHON_DISTRO``/``OTEL_PYTHON_CONFIGURATOR``
  set to a name nobody registered), so it loads the installed instrumentors and
  configures no SDK at all: the reference of the target;
* ``opentelemetry-instrument python -c pass`` as installed: with our distro and
  configurator it does the same work as ``otel-tdd run``, through its own wrapper;
* ``python -c "import otel_tdd; otel_tdd.configure()"``: what configuring costs
  inside a process, with no wrapper and no instrumentors.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
PYTHON = sys.executable
TARGET = 0.5

CASES: dict[str, tuple[list[str], dict[str, str]]] = {
    "python -c pass": ([PYTHON, "-c", "pass"], {}),
    "otel-tdd run python -c pass": ([str(BIN / "otel-tdd"), "run", PYTHON, "-c", "pass"], {}),
    "opentelemetry-instrument (stock)": (
        [str(BIN / "opentelemetry-instrument"), PYTHON, "-c", "pass"],
        {"OTEL_PYTHON_DISTRO": "stock", "OTEL_PYTHON_CONFIGURATOR": "stock"},
    ),
    "opentelemetry-instrument (our distro)": (
        [str(BIN / "opentelemetry-instrument"), PYTHON, "-c", "pass"],
        {},
    ),
    "in-process configure()": ([PYTHON, "-c", "import otel_tdd; otel_tdd.configure()"], {}),
}
BASELINE = "python -c pass"
OURS = "otel-tdd run python -c pass"
REFERENCE = "opentelemetry-instrument (stock)"


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTHONPATH"))}
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    return env


def time_once(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{argv} failed ({result.returncode}): {result.stderr.decode()[-500:]}")
    return elapsed * 1000.0


def measure(rounds: int, warmup: int) -> dict[str, list[float]]:
    env = base_env()
    names = list(CASES)
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(warmup):
        for name in names:
            argv, extra = CASES[name]
            time_once(argv, {**env, **extra})
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            argv, extra = CASES[name]
            times[name].append(time_once(argv, {**env, **extra}))
    return times


def report(times: dict[str, list[float]]) -> str:
    base = statistics.median(times[BASELINE])
    rounds = len(times[BASELINE])
    per_round = [
        (ours - plain) / (ref - plain)
        for ours, ref, plain in zip(times[OURS], times[REFERENCE], times[BASELINE], strict=True)
        if ref > plain
    ]
    ratio = statistics.median(per_round)
    lines = [
        f"{rounds} interleaved rounds; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.platform()}",
        "",
        "| command | median ms | p25-p75 ms | adds to python -c pass |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, values in times.items():
        quartiles = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
        median = statistics.median(values)
        added = "-" if name == BASELINE else f"{median - base:+.0f} ms"
        lines.append(f"| {name} | {median:.0f} | {quartiles[0]:.0f}-{quartiles[2]:.0f} | {added} |")
    added_ours = statistics.median(times[OURS]) - base
    added_ref = statistics.median(times[REFERENCE]) - base
    verdict = "meets" if ratio <= TARGET else "MISSES"
    lines += [
        "",
        f"otel-tdd run adds {added_ours:.0f} ms, stock opentelemetry-instrument {added_ref:.0f} ms:"
        f" ratio {added_ours / added_ref:.2f} of medians, {ratio:.2f} median per round"
        f" ({verdict} the target <= {TARGET}).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 rounds, no warm-up")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.warmup = 2, 0
    print(report(measure(args.rounds, args.warmup)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
