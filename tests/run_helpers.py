"""Start a real command under ``otel-tdd run`` for a test, and always stop it by pid.

Shared by the tests of the wrapper (tests/integration/test_run_wrapper.py,
test_gunicorn_fork.py) and the end-to-end ones (tests/e2e/test_streamlit_browser.py,
test_http_hop.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
OTEL_TDD = str(BIN / "otel-tdd")
EXAMPLES = REPO / "examples"

# Export intervals long enough that nothing leaves the process before it is stopped:
# whatever the Collector has afterwards came through the final flush.
FLUSH_ONLY_AT_EXIT = {
    "OTEL_BSP_SCHEDULE_DELAY": "600000",
    "OTEL_BLRP_SCHEDULE_DELAY": "600000",
    "OTEL_METRIC_EXPORT_INTERVAL": "600000",
}
# Short intervals, for tests that look while the process runs.
EXPORT_SOON = {
    "OTEL_BSP_SCHEDULE_DELAY": "200",
    "OTEL_BLRP_SCHEDULE_DELAY": "200",
    "OTEL_METRIC_EXPORT_INTERVAL": "1000",
}


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without any OTEL_* setting of the caller's, venv bin first on PATH."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("OTEL_") and key not in ("PYTHONPATH", "PYTHONSTARTUP")
    }
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def http_get(url: str, timeout: float = 5.0, headers: Mapping[str, str] | None = None) -> Any:
    """(status, body text); an HTTP error status is returned, not raised."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class RunningCommand:
    """A command started by a test; stdout and stderr go to files in ``directory``."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        directory: Path,
        name: str,
        cwd: Path | None = None,
    ):
        self.argv = list(argv)
        self.stdout_path = directory / f"{name}.stdout"
        self.stderr_path = directory / f"{name}.stderr"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                self.argv,
                env=dict(env),
                cwd=cwd or REPO,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                # Its own process group: the kill path reaches gunicorn workers and Celery's
                # pool children too, not only the top pid.
                start_new_session=True,
            )
        self.pid = self.proc.pid

    def output(self, lines: int = 40) -> str:
        def tail(path: Path) -> str:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

        return (
            f"--- argv: {self.argv}\n--- stdout ---\n{tail(self.stdout_path)}"
            f"\n--- stderr ---\n{tail(self.stderr_path)}"
        )

    def wait_http(self, url: str, timeout_s: float = 60.0, status: int = 200) -> str:
        """Poll ``url`` until it answers ``status``; fail with the output if the command died."""
        deadline = time.monotonic() + timeout_s
        last: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"exited with {self.proc.returncode} before {url} answered\n{self.output()}",
                    pytrace=False,
                )
            try:
                code, body = http_get(url, timeout=2.0)
                if code == status:
                    return str(body)
                last = code
            except OSError as error:
                last = error
            time.sleep(0.2)
        pytest.fail(
            f"{url} did not answer {status} in {timeout_s}s (last: {last!r})\n{self.output()}",
            pytrace=False,
        )

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, then wait for the exit; returns the exit code (fails if it hangs)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"no exit {timeout_s}s after SIGTERM\n{self.output()}", pytrace=False)

    def json_lines(self) -> list[dict[str, Any]]:
        """The JSON log records the command wrote to stdout."""
        records = []
        for line in self.stdout_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
        return records

    def kill(self) -> None:
        """SIGKILL the process group we created (the command and any child it left)."""
        kill_group(self.proc)


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL ``proc``'s group; only for a ``proc`` started with ``start_new_session=True``
    (its pid is its group's id). Also when ``proc`` is gone: its children may not be."""
    with suppress(ProcessLookupError):  # the whole group already exited
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait(10)


@contextmanager
def running(
    argv: Sequence[str], env: Mapping[str, str], directory: Path, name: str, cwd: Path | None = None
) -> Iterator[RunningCommand]:
    """Start ``argv`` (in ``cwd``, else the repository); whatever happens in the block, the
    process is gone afterwards."""
    command = RunningCommand(argv, env, directory, name, cwd)
    try:
        yield command
    finally:
        command.kill()
