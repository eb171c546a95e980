"""Run an unmodified app bare and under ``otel-tdd run``, and compare what each printed.

Shared by the matrix rows in tests/compat/ (a plain module: a conftest.py here would
replace tests/conftest.py in sys.modules). The row tests own their apps; this only
runs them, strips what the wrapper adds by design (our JSON lines on stdout and the
lines it prints on stderr), and finds the records and spans of one service and the
``job`` span a row's app wraps its work in.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from run_helpers import FLUSH_ONLY_AT_EXIT, OTEL_TDD, clean_env

__all__ = [
    "PYTHON",
    "Job",
    "Outcome",
    "assert_correlated",
    "assert_one_error",
    "exported_job",
    "instrumentation",
    "of_service",
    "otlp_to",
    "run_app",
    "wrapper_problems",
    "write_app",
]

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


def instrumentation(name: str) -> str:
    """``opentelemetry-instrumentation-NAME VERSION``, for a row's notes."""
    from compat_matrix import installed_version

    package = f"opentelemetry-instrumentation-{name}"
    return f"{package} {installed_version(package)}"


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


# --- one unit of work of a row: a span, its operations, its records ---------------------------


@dataclass
class Job:
    """What a row's app did inside its ``job`` span, as the Collector received it."""

    span: dict[str, Any]
    spans: list[dict[str, Any]]
    records: list[dict[str, Any]]

    def children(self) -> list[dict[str, Any]]:
        """The spans of the operations (queries, commands) made inside the job."""
        return [s for s in self.spans if s["parent_span_id"] == self.span["span_id"]]


def exported_job(collector: Any, service: str, messages: set[str], job_name: str = "job") -> Job:
    """Wait until ``service``'s ``job`` span and every record in ``messages`` arrived."""

    def arrived() -> Job | None:
        spans = of_service(collector.spans(), service)
        jobs = [s for s in spans if s["name"] == job_name]
        records = [r for r in of_service(collector.logs(), service) if r["body"] in messages]
        if not jobs or {r["body"] for r in records} != messages:
            return None
        return Job(jobs[0], spans, records)

    job: Job = collector.wait_for(arrived, 20, f"{service}'s job span and records")
    return job


def assert_correlated(job: Job, json_records: list[dict[str, Any]], messages: set[str]) -> None:
    """Each record written in the job: once on stdout and once over OTLP, with its ids."""
    ids = (job.span["trace_id"], job.span["span_id"])
    assert sorted(r["body"] for r in job.records) == sorted(messages), "each record once (OTLP)"
    for record in job.records:
        assert (record["trace_id"], record["span_id"]) == ids, record
    on_stdout = [r for r in json_records if r["message"] in messages]
    assert sorted(r["message"] for r in on_stdout) == sorted(messages), "each record once (JSON)"
    for line in on_stdout:
        assert (line["trace_id"], line["span_id"]) == ids, line


def assert_one_error(job: Job, error_message: str) -> dict[str, Any]:
    """Exactly one error span (returned) and one ERROR record, ``error_message``."""
    errors = [s for s in job.spans if s["status_code"] == "ERROR"]
    assert len(errors) == 1, [(s["name"], s["status_message"]) for s in errors]
    error_records = [r for r in job.records if r["severity_text"] == "ERROR"]
    assert [r["body"] for r in error_records] == [error_message]
    return errors[0]
