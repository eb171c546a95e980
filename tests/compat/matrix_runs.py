"""Run an unmodified app bare and under ``otel-tdd run``, and compare what each printed.

Shared by the matrix rows in tests/compat/ (a plain module: a conftest.py here would
replace tests/conftest.py in sys.modules). The row tests own their apps; this only
runs them, strips what the wrapper adds by design (our JSON lines on stdout and the
lines it prints on stderr), and finds the records and spans of one service.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from run_helpers import FLUSH_ONLY_AT_EXIT, OTEL_TDD, REPO, clean_env

PYTHON = str(Path(OTEL_TDD).parent / "python")


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str

    def json_records(self) -> list[dict[str, Any]]:
        """Our JSON log lines on stdout."""
        return [json.loads(line) for line in self.stdout.splitlines() if _is_json(line)]

    def app_stdout(self) -> list[str]:
        """stdout as the app wrote it: our JSON lines removed."""
        return [line for line in self.stdout.splitlines() if not _is_json(line)]

    def app_stderr(self) -> list[str]:
        """stderr as the app wrote it: the wrapper's own ``otel-tdd:`` lines removed."""
        return [line for line in self.stderr.splitlines() if not line.startswith("otel-tdd")]

    def wrapper_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("otel-tdd")]


def _is_json(line: str) -> bool:
    if not line.startswith('{"timestamp"'):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def write_app(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def otlp_to(collector: Any, service: str) -> list[str]:
    """``otel-tdd run`` options: every signal over OTLP to ``collector`` as ``service``."""
    return [
        "--service-name", service, "--exporter", "otlp",
        "--endpoint", collector.otlp_http_endpoint,
    ]  # fmt: skip


def run_app(
    argv: list[str],
    *,
    cwd: Path,
    wrap: list[str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> Outcome:
    """``argv`` bare (``wrap`` None) or under ``otel-tdd run`` with the options ``wrap``."""
    command = list(argv) if wrap is None else [OTEL_TDD, "run", *wrap, *argv]
    result = subprocess.run(
        command,
        env=clean_env({**FLUSH_ONLY_AT_EXIT, **(env or {})}),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Outcome(result.returncode, result.stdout, result.stderr)


def of_service(items: list[dict[str, Any]], service: str) -> list[dict[str, Any]]:
    return [item for item in items if item["resource"].get("service.name") == service]


def wrapper_problems(outcome: Outcome, allowed: tuple[str, ...] = ()) -> list[str]:
    """WARNING/ERROR lines from the wrapper itself: its stderr lines and its own records."""
    lines = [line for line in outcome.wrapper_lines() if not any(a in line for a in allowed)]
    records = [
        f"{r['level']} {r['logger']}: {r['message']}"
        for r in outcome.json_records()
        if r["logger"].startswith(("otel_tdd", "opentelemetry"))
        and r["level"] in ("WARNING", "ERROR", "CRITICAL")
    ]
    return lines + records


__all__ = [
    "PYTHON",
    "REPO",
    "Outcome",
    "of_service",
    "otlp_to",
    "run_app",
    "wrapper_problems",
    "write_app",
]
