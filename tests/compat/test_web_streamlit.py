"""Streamlit's row of the matrix, without a browser: a script with an uncaught exception,
run by Streamlit's own ``AppTest`` (the real script runner) under ``otel-tdd run``.

Issue 13, defect 6: one uncaught exception produced two ERROR records with full
tracebacks, Streamlit's "Uncaught app execution" and ours. Streamlit logs that
record when its rich tracebacks are off (``logger.enableRich``); with them on (the
default when ``rich`` is importable) it prints a rich panel instead, plain text
among the JSON lines. Both ways, the exception must be one JSON ERROR record.
The browser row (a real Chromium clicking the example app) is
tests/e2e/test_streamlit_browser.py.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from compat_helpers import Run, no_wrapper_noise, ours, wrapped, wrapped_env
from run_helpers import BIN, clean_env

pytestmark = pytest.mark.integration

SCRIPT = """
import logging
import streamlit as st

logging.getLogger("compat.app").info("compat rerun")
st.write("before the failure")
raise RuntimeError("compat boom in a script")
"""

DRIVER = """
import sys
from streamlit import config
from streamlit.testing.v1 import AppTest

config.set_option("logger.enableRich", sys.argv[2] == "rich")
at = AppTest.from_file(sys.argv[1]).run()
print("exceptions shown:", len(at.exception), "markdown:", [m.value for m in at.markdown])
"""


def run(argv: list[str], env: dict[str, str]) -> Run:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    records = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    return Run([], result.returncode, records, result.stdout, result.stderr)


@pytest.mark.parametrize("tracebacks", ["rich", "logging"])
def test_streamlit_uncaught_exception_is_one_error_span_and_one_record(
    tracebacks: str, module_collector: Any, tmp_path: Path, compat_row: Callable[..., None]
) -> None:
    collector = module_collector
    service = f"compat-streamlit-apptest-{tracebacks}"
    (tmp_path / "app.py").write_text(SCRIPT)
    (tmp_path / "driver.py").write_text(DRIVER)
    argv = [str(BIN / "python"), str(tmp_path / "driver.py"), str(tmp_path / "app.py"), tracebacks]
    bare = run(argv, clean_env())
    wrapped_run = run(wrapped(argv, collector.otlp_http_endpoint, service), wrapped_env())

    def shown(r: Run) -> list[str]:
        return [line for line in r.stdout.splitlines() if line.startswith("exceptions shown:")]

    assert (
        shown(wrapped_run)
        == shown(bare)
        == ["exceptions shown: 1 markdown: ['before the failure']"]
    ), bare.output
    assert wrapped_run.exit_code == bare.exit_code == 0, wrapped_run.output
    no_wrapper_noise(wrapped_run, bare)

    errors = [r for r in wrapped_run.stdout_records if r.get("level") == "ERROR"]
    assert len(errors) == 1, errors
    assert "compat boom in a script" in errors[0]["exception"], errors
    plain = [
        line
        for line in (wrapped_run.stdout + wrapped_run.stderr).splitlines()
        if "compat boom" in line and not line.startswith("{")
    ]
    assert not plain, wrapped_run.output

    def rerun_span() -> list[dict[str, Any]]:
        return [s for s in ours(collector.spans(), service) if s["name"].startswith("rerun ")]

    (span,) = collector.wait_for(rerun_span, 20, "the rerun span")
    assert span["status_code"] == "ERROR"
    assert errors[0]["trace_id"] == span["trace_id"]
    logs = collector.wait_for(lambda: ours(collector.logs(), service), 15, "logs")
    otlp_errors = [r for r in logs if r["severity_text"] == "ERROR"]
    assert len(otlp_errors) == 1 and otlp_errors[0]["trace_id"] == span["trace_id"], otlp_errors
    (info,) = [r for r in logs if r["body"] == "compat rerun"]
    assert info["trace_id"] == span["trace_id"] and info["span_id"] == span["span_id"]

    compat_row(
        "streamlit",
        f"AppTest (the real script runner), a script that raises; {tracebacks} tracebacks",
        [
            "same page and exit code as bare",
            "one rerun span, status ERROR",
            "one ERROR record with the traceback (stdout, OTLP)",
            "the script's log record carries the rerun's trace and span id",
            "no wrapper WARNING/ERROR",
        ],
    )
