"""``examples/tdd_app.py`` as a real process for the stack tests: ``serve`` and ``demo`` modes.

The app is configured only through the standard variables a user would set
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_METRIC_EXPORT_INTERVAL``,
``OTEL_TDD_ALERTMANAGER_URL``), pointed at a running local stack.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from run_helpers import REPO, RunningCommand, clean_env

from otel_tdd.stack import process

if TYPE_CHECKING:
    from otel_tdd.stack.local import LocalStack

APP = REPO / "examples" / "tdd_app.py"


def app_env(stack: LocalStack, *, alerting: bool = True, **extra: str) -> dict[str, str]:
    """The app's environment: OTLP to the stack's Collector, metrics every second."""
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": stack.otlp_http_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        "OTEL_BSP_SCHEDULE_DELAY": "500",
        "OTEL_BLRP_SCHEDULE_DELAY": "500",
        **extra,
    }
    if alerting:
        env["OTEL_TDD_ALERTMANAGER_URL"] = stack.alertmanager_url
    return clean_env(env)


def post(url: str, body: Any = None, timeout: float = 15.0) -> tuple[int, Any]:
    """POST JSON; (status, decoded JSON body). An HTTP error status is returned, not raised."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body or {}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


class ServedApp:
    """``tdd_app.py serve`` on a free loopback port; stopped with SIGINT (final flush)."""

    def __init__(self, directory: Path, service: str, env: dict[str, str]) -> None:
        (self.port,) = process.free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        self.service = service
        argv = [sys.executable, str(APP), "serve", "--port", str(self.port)]
        argv += ["--service-name", service]
        self.command = RunningCommand(argv, env, directory, f"app-{service}")
        deadline = time.monotonic() + 60
        while True:
            if self.command.proc.poll() is not None:
                pytest.fail(f"the example app exited\n{self.command.output()}", pytrace=False)
            try:
                if self.set_latency(0) == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the example app never answered\n{self.command.output()}")
            time.sleep(0.2)

    def post(self, path: str, body: Any = None, timeout: float = 15.0) -> tuple[int, Any]:
        return post(self.url + path, body, timeout)

    def set_latency(self, ms: int) -> int:
        """Make every request ``ms`` slower (the app's test hook); returns the HTTP status."""
        status, _ = self.post(f"/admin/latency?ms={ms}", timeout=5)
        return status

    def output(self) -> str:
        return self.command.output()

    def stop(self) -> None:
        """Ctrl-C, as serve mode expects: it stops serving and flushes its telemetry."""
        proc = self.command.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            self.command.kill()
            pytest.fail(f"the example app ignored SIGINT for 30 s\n{self.output()}")
        assert code == 0, f"the example app exited {code}\n{self.output()}"


def run_demo(
    stack: LocalStack, service: str, *, epics: int = 3, tasks: int = 2, sessions: int = 2
) -> subprocess.CompletedProcess[str]:
    """``tdd_app.py`` demo mode once (a known workload), sending to the stack; must exit 0."""
    argv = [sys.executable, str(APP), "--epics", str(epics), "--tasks", str(tasks)]
    argv += ["--sessions", str(sessions), "--service-name", service]
    done = subprocess.run(
        argv,
        env=app_env(stack, alerting=False, OTEL_TDD_LOG_STREAM="none"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done
