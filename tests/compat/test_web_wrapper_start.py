"""``otel-tdd run`` starts silently whether an instrumented library is present or absent,
and ``--list-instrumentations`` says what happens to each instrumentor and why.

Issue 13, defects 1 and 2: httpx's ``httpx2`` entry point made every start print a
WARNING and an ERROR; an instrumentor whose library is absent (Streamlit's, in any
environment without Streamlit) printed an ERROR on every start. Here an absent
library and a failing instrumentor are played by a small distribution on
``PYTHONPATH`` (a real entry point, found the way pip-installed ones are).
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from run_helpers import OTEL_TDD, clean_env

pytestmark = pytest.mark.integration

ABSENT = "otel-tdd-absent-lib"  # not a module name: activated at start, like Streamlit's
FAILING = "otel_tdd_failing_lib"

INSTRUMENTORS = """
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor


class Absent(BaseInstrumentor):
    def instrumentation_dependencies(self):
        return ("otel-tdd-no-such-library >= 1.0",)

    def _instrument(self, **kwargs):
        raise AssertionError("instrumented a library that is not installed")

    def _uninstrument(self, **kwargs):
        pass


class Failing(BaseInstrumentor):
    def instrumentation_dependencies(self):
        return ()

    def _instrument(self, **kwargs):
        raise RuntimeError("a bug in this instrumentor")

    def _uninstrument(self, **kwargs):
        pass
"""


def fake_distribution(root: Path) -> Path:
    """A distribution with two instrumentor entry points, as pip would install it."""
    (root / "fake_instrumentors.py").write_text(INSTRUMENTORS)
    info = root / "fake_instrumentors-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-instrumentors\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[opentelemetry_instrumentor]\n"
        f"{ABSENT} = fake_instrumentors:Absent\n"
        f"{FAILING} = fake_instrumentors:Failing\n"
    )
    return root


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OTEL_TDD, "run", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def records(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def warnings_and_errors(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [r for r in records(result.stdout) if r.get("level") in ("WARNING", "ERROR", "CRITICAL")]


# Imports every library of the matrix, so that each instrumentor activates (Django's
# after django.setup()), then prints what the bootstrap did with each.
IMPORT_ALL = textwrap.dedent(
    """
    import json, os
    import aiohttp, fastapi, flask, httpx, requests, starlette, urllib3, urllib.request
    import streamlit
    import celery, psycopg, redis, sqlalchemy
    import django
    from django.conf import settings
    settings.configure()
    django.setup()
    from otel_tdd.auto.bootstrap import STATUS
    print(json.dumps({"status": STATUS}))
    """
)


def test_start_is_silent_with_every_matrix_library_imported(tmp_path: Path) -> None:
    result = run(["--exporter", "none", "python", "-c", IMPORT_ALL], clean_env())
    assert result.returncode == 0, result.stderr
    assert not warnings_and_errors(result), result.stdout
    assert result.stderr == "", result.stderr
    (line,) = [r for r in records(result.stdout) if "status" in r]
    status = line["status"]
    active = {"aiohttp-client", "aiohttp-server", "celery", "django", "fastapi", "flask",
              "httpx", "psycopg", "redis", "requests", "sqlalchemy", "starlette", "streamlit",
              "urllib", "urllib3"}  # fmt: skip
    assert {name for name, (state, _) in status.items() if state == "active"} == active, status
    # httpx's second entry point is for the httpx2 package, absent here: a quiet skip.
    assert status["httpx2"][0] == "skipped" and "httpx2" in status["httpx2"][1], status


def test_start_is_silent_when_a_library_is_absent_or_an_instrumentor_fails(
    tmp_path: Path,
) -> None:
    env = clean_env({"PYTHONPATH": str(fake_distribution(tmp_path))})
    result = run(["--exporter", "none", "python", "-c", "pass"], env)
    assert result.returncode == 0, result.stderr
    assert not warnings_and_errors(result), result.stdout
    assert result.stderr == "", result.stderr

    probe = "from otel_tdd.auto.bootstrap import STATUS; import json; print(json.dumps(STATUS))"
    status = json.loads(run(["--exporter", "none", "python", "-c", probe], env).stdout)
    assert status[ABSENT][0] == "skipped", status
    assert "otel-tdd-no-such-library" in status[ABSENT][1], status
    assert status[FAILING] == ["skipped", "failed: RuntimeError('a bug in this instrumentor')"]

    # The same skips as DEBUG records, one per instrumentor, when asked for.
    debug = run(
        ["--exporter", "none", "python", "-c", "pass"], {**env, "OTEL_TDD_LOG_LEVEL": "DEBUG"}
    )
    skipped = [
        r["message"]
        for r in records(debug.stdout)
        if r.get("logger") == "otel_tdd.auto" and "skipped" in r["message"]
    ]
    assert sum(ABSENT in m for m in skipped) == 1 and sum(FAILING in m for m in skipped) == 1, (
        skipped
    )
    assert all(
        r["level"] == "DEBUG" for r in records(debug.stdout) if r["logger"] == "otel_tdd.auto"
    )


def test_list_instrumentations_says_what_is_ready_skipped_disabled_and_why(tmp_path: Path) -> None:
    env = clean_env({"PYTHONPATH": str(fake_distribution(tmp_path))})
    result = run(["--disabled-instrumentations", "flask", "--list-instrumentations"], env)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert "ready" in rows["httpx"] and "activates on import of httpx" in rows["httpx"]
    assert "opentelemetry-instrumentation-httpx 0.66b1" in rows["httpx"]
    assert "skipped" in rows["httpx2"] and '"httpx2 >= 2.0.0"' in rows["httpx2"]
    assert "activates after django.setup()" in rows["django"]
    assert "disabled" in rows["flask"]
    assert "superseded" in rows["logging"]
    assert "skipped" in rows[ABSENT] and "otel-tdd-no-such-library" in rows[ABSENT]
    assert "fake-instrumentors 1.0" in rows[ABSENT]
