"""Cached Go builds, shared by the Collector and the store builds.

A binary is built once per cache key under a lock, with the build's output in
``build.log`` beside it, a progress line every 30 s, and an atomic replace.
Stdlib only (the Collector module's no-dependency rule covers this one too).
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from .private_files import exclusive_lock
from .process import tail

__all__ = [
    "ENV_CACHE",
    "Clock",
    "GoBuildError",
    "Progress",
    "cache_root",
    "cached_go_build",
    "parse_go_version",
    "run_logged",
]

ENV_CACHE = "OTEL_TDD_CACHE_DIR"
HEARTBEAT_SECONDS = 30.0
LOG_TAIL_LINES = 25

Progress = Callable[[str], None]
# Maps one line of a build's output to a progress message, or None to keep it in the log only.
Relay = Callable[[str], "str | None"]


class GoBuildError(Exception):
    """A Go build failed; the message names its log and quotes the last lines."""


def cache_root() -> Path:
    """Everything we download or build lives here; ``OTEL_TDD_CACHE_DIR`` moves it."""
    override = os.environ.get(ENV_CACHE)
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "otel-tdd"


def parse_go_version(text: str) -> tuple[int, int] | None:
    """``(1, 25)`` from ``go1.25.3``; None when ``text`` names no Go release."""
    match = re.search(r"go(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


class Clock:
    """Prefixes progress lines with the time since the build started."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._start = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def say(self, message: str) -> None:
        self._progress(f"[{self.elapsed:6.1f}s] {message}")


def _pump(stream: IO[str], log: IO[str], clock: Clock, relay: Relay | None) -> None:
    """Copy the build's output to the log, relaying the lines ``relay`` picks."""
    for line in stream:
        log.write(line)
        log.flush()
        message = relay(line) if relay is not None else None
        if message:
            clock.say(message)


def run_logged(
    cmd: list[str],
    log: Path,
    clock: Clock,
    env: Mapping[str, str],
    *,
    relay: Relay | None = None,
    error: type[Exception] = GoBuildError,
) -> None:
    """Run ``cmd`` with its output in ``log``; say it is alive; fail with the log's tail."""
    with log.open("a", encoding="utf-8") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=log.parent,
            env=dict(env),
        )
        assert proc.stdout is not None
        pump = threading.Thread(target=_pump, args=(proc.stdout, fh, clock, relay), daemon=True)
        pump.start()
        while True:
            try:
                code = proc.wait(timeout=HEARTBEAT_SECONDS)
                break
            except subprocess.TimeoutExpired:
                clock.say(f"still running (log: {log})")
        pump.join(timeout=5)
    if code != 0:
        raise error(
            f"`{' '.join(cmd[:2])} ...` failed with exit code {code}; full log: {log}\n"
            f"--- last lines ---\n{tail(log, LOG_TAIL_LINES)}"
        )


def cached_go_build(
    target: Path,
    *,
    label: str,
    describe: str,
    find_go: Callable[[], str],
    build: Callable[[str, Path, Clock], Path],
    missing: Callable[[Path, Path], Exception],
    progress: Progress,
    force: bool,
) -> Path:
    """Reuse ``target`` or build it once under a lock, with build.log beside it.

    ``build(go, workdir, clock)`` returns where it left the binary, which then
    replaces ``target`` atomically (a half-built binary is never ``target``).
    """
    if target.is_file() and not force:
        progress(f"{label}up to date: {target}")
        return target
    go = find_go()
    workdir = target.parent
    workdir.mkdir(parents=True, exist_ok=True)
    clock = Clock(progress)
    with exclusive_lock(workdir / ".lock"):
        if target.is_file() and not force:  # built by another process while we waited
            clock.say(f"{label}up to date: {target}")
            return target
        log = workdir / "build.log"
        log.write_text("", encoding="utf-8")
        clock.say(f"building {describe} (log: {log})")
        built = build(go, workdir, clock)
        if not built.is_file():
            raise missing(built, log)
        os.replace(built, target)
        clock.say(f"built {target} in {clock.elapsed:.0f}s")
    return target
