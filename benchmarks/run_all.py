"""Every benchmark, one after the other: the one command behind ``./dev bench``.

    .venv/bin/python benchmarks/run_all.py            # full runs (~20 minutes)
    .venv/bin/python benchmarks/run_all.py --quick    # smoke run of each (~3 minutes)

Runs overhead.py, startup.py, ops_server_wrk.py, pipeline_throughput.py (also
with ``--stores``) and app_overhead.py in sequence, each in its own process (so
one's SDK state cannot leak into the next), with a progress line per step;
``--quick`` is passed through. Every script runs even if an earlier one failed;
the exit code is 1 if any did.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = (
    "overhead.py",
    "startup.py",
    "ops_server_wrk.py",
    "pipeline_throughput.py",
    "pipeline_throughput.py --stores",  # the same into Jaeger and VictoriaLogs, read back
    "app_overhead.py",
    "gil_wait.py",
)


def say(text: str) -> None:
    # stderr, so stdout holds only the benchmarks' own tables.
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run of each benchmark")
    args = parser.parse_args(argv)
    extra = ["--quick"] if args.quick else []
    failed: list[str] = []
    started = time.monotonic()
    for index, script in enumerate(SCRIPTS, 1):
        say(f"==> [{index}/{len(SCRIPTS)}] {script} {' '.join(extra)}".rstrip())
        step = time.monotonic()
        sys.stdout.flush()
        name, *options = script.split()
        code = subprocess.call([sys.executable, str(HERE / name), *options, *extra])
        result = "ok" if code == 0 else f"FAILED (exit {code})"
        say(f"==> [{index}/{len(SCRIPTS)}] {script}: {result} in {time.monotonic() - step:.0f} s")
        if code != 0:
            failed.append(script)
    total = time.monotonic() - started
    if failed:
        say(f"==> {len(failed)} of {len(SCRIPTS)} failed in {total:.0f} s: {', '.join(failed)}")
        return 1
    say(f"==> all {len(SCRIPTS)} benchmarks ran in {total:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
