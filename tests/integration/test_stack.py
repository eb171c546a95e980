"""`otel-tdd stack` with the real Collector, Prometheus and Alertmanager on free ports.

Each test gets its own state directory; every process is stopped by pid, and a
test checks its pids are gone rather than trusting `down`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from otel_tdd.stack import process
from otel_tdd.stack.collector import collector_binary
from otel_tdd.stack.local import COMPONENTS, LocalStack, Receivers, StackError

pytestmark = pytest.mark.integration


def run_cli(*args: str, state_dir: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    """``otel-tdd stack ARGS`` as a user runs it: a separate process; rc and stdout+stderr."""
    full_env = {**(env if env is not None else os.environ), "OTEL_TDD_STACK_DIR": str(state_dir)}
    result = subprocess.run(
        [sys.executable, "-m", "otel_tdd.cli", "stack", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def recorded_pids(state_dir: Path) -> dict[str, int]:
    state = json.loads((state_dir / "state.json").read_text())
    return {name: proc["pid"] for name, proc in state["processes"].items()}


def assert_gone(pids: dict[str, int] | list[int]) -> None:
    values = list(pids.values()) if isinstance(pids, dict) else pids
    assert process.wait_until(
        lambda: not any(process.is_running(pid) for pid in values), timeout=5
    ), f"still running: {[p for p in values if process.is_running(p)]}"


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """A state dir that is always brought down afterwards, whatever the test did."""
    directory = tmp_path / "stack"
    yield directory
    LocalStack(directory).down()


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process whose pid a stale state.json will name."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait(timeout=5)


# --- the round trip through the CLI ----------------------------------------------------------


def test_cli_up_status_logs_down_round_trip_leaves_no_process(state_dir: Path) -> None:
    code, out = run_cli("up", "--free-ports", state_dir=state_dir)
    assert code == 0, out
    for component in COMPONENTS:
        assert f"{component:<13} ready in" in out, out
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:" in out
    pids = recorded_pids(state_dir)
    assert set(pids) == set(COMPONENTS)
    assert all(process.is_running(pid) for pid in pids.values())

    code, out = run_cli("status", state_dir=state_dir)
    assert code == 0, out
    for component, pid in pids.items():
        row = next(line for line in out.splitlines() if line.startswith(component))
        assert str(pid) in row and "running" in row and "ready" in row, out

    code, out = run_cli("logs", "prometheus", "-n", "3", state_dir=state_dir)
    assert code == 0 and len(out.splitlines()) == 3, out
    code, out = run_cli("logs", "collector", state_dir=state_dir)
    assert code == 0 and "Everything is ready" in out, out

    code, out = run_cli("down", state_dir=state_dir)
    assert code == 0, out
    for component, pid in pids.items():
        assert f"{component:<13} stopped (pid {pid})" in out, out
    assert_gone(pids)
    assert not (state_dir / "state.json").exists()

    code, out = run_cli("status", state_dir=state_dir)
    assert code == 1 and "running" not in out, out


def test_up_is_idempotent(state_dir: Path) -> None:
    first = LocalStack(state_dir, free_ports=True)
    first.up()
    pids, urls = first.pids, first.urls

    lines: list[str] = []
    again = LocalStack(state_dir, free_ports=True, progress=lines.append)
    rows = again.up()
    assert again.pids == pids and again.urls == urls
    assert all(row.state == "running" and row.healthy for row in rows)
    for component, pid in pids.items():
        assert f"{component:<13} already running (pid {pid})" in lines
    assert "stack already up" in lines[-1]

    again.down()
    assert_gone(pids)


# --- failures: named, and nothing left half-running ------------------------------------------


def test_port_in_use_is_reported_by_component_and_nothing_starts(state_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        stack = LocalStack(state_dir, free_ports=True, ports={"prometheus.web": port})
        before = set(process.running_children())
        with pytest.raises(StackError) as raised:
            stack.up()
    assert raised.value.component == "prometheus"
    assert f"127.0.0.1:{port} is in use" in str(raised.value)
    assert str(raised.value).startswith("prometheus: ")
    assert set(process.running_children()) == before
    assert not (state_dir / "state.json").exists()


def test_port_in_use_through_the_cli_exits_1_naming_component_and_port(state_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out = run_cli(
            "up", "--free-ports", "--port", f"collector.otlp_http={port}", state_dir=state_dir
        )
    assert code == 1
    assert f"collector: otlp_http port 127.0.0.1:{port} is in use" in out, out
    assert not (state_dir / "state.json").exists()


def test_stale_pid_file_never_kills_an_unrelated_process(
    state_dir: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    def write_stale_state() -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        argv = [str(collector_binary()), f"--config={state_dir / 'collector' / 'config.yaml'}"]
        (state_dir / "state.json").write_text(
            json.dumps(
                {
                    "version": 1,
                    "ports": {"collector": {"otlp_http": 1}},
                    "processes": {
                        "collector": {"pid": sleeper.pid, "argv": argv, "started_at": "earlier"}
                    },
                }
            )
        )

    write_stale_state()
    stack = LocalStack(state_dir, free_ports=True, components=("collector",))
    [row] = stack.status()
    assert (row.name, row.pid, row.state, row.healthy) == ("collector", sleeper.pid, "stale", False)

    lines: list[str] = []
    results = LocalStack(state_dir, progress=lines.append).down()
    assert [(name, result) for name, result, _ in results] == [
        ("collector", process.StopResult.NOT_OURS)
    ]
    assert sleeper.poll() is None, "down killed a process that was not ours"
    assert "stale pid file" in lines[0] and "sleep 300" in lines[0], lines

    write_stale_state()
    lines.clear()
    stack = LocalStack(state_dir, free_ports=True, components=("collector",), progress=lines.append)
    stack.up()
    assert any("stale pid file" in line and str(sleeper.pid) in line for line in lines), lines
    new_pid = stack.pids["collector"]
    assert new_pid != sleeper.pid and process.is_running(new_pid)
    stack.down()
    assert_gone([new_pid])
    assert sleeper.poll() is None, "up/down killed a process that was not ours"


def test_component_that_dies_at_start_is_reported_by_name_and_the_rest_stopped(
    state_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "receivers: {otlp: {protocols: {http: {}}}}\n"
        "exporters: {no_such_exporter: {}}\n"
        "service: {pipelines: {traces: {receivers: [otlp], exporters: [no_such_exporter]}}}\n"
    )
    before = set(process.running_children())
    stack = LocalStack(state_dir, free_ports=True, collector_config=broken)
    with pytest.raises(StackError) as raised:
        stack.up()
    message = str(raised.value)
    assert raised.value.component == "collector"
    assert message.startswith("collector: exited with code"), message
    assert "no_such_exporter" in message, "the log tail should show the Collector's complaint"
    assert set(process.running_children()) == before, "Prometheus/Alertmanager left running"
    assert not (state_dir / "state.json").exists()


def test_missing_binaries_are_named_with_their_install_lines(
    state_dir: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("OTELCOL_BIN", "OTEL_TDD_PROMETHEUS_BIN", "OTEL_TDD_ALERTMANAGER_BIN")
    }
    env.update(PATH=str(empty), OTEL_TDD_CACHE_DIR=str(tmp_path / "empty-cache"))
    code, out = run_cli("up", "--free-ports", state_dir=state_dir, env=env)
    assert code == 1, out
    assert "otel-tdd collector build" in out
    assert "apt-get install prometheus " in out
    assert "apt-get install prometheus-alertmanager" in out
    assert not (state_dir / "state.json").exists()


# --- what the rendered files say -------------------------------------------------------------


def test_rendered_configs_are_valid_and_point_at_the_local_ports(state_dir: Path) -> None:
    stack = LocalStack(state_dir, free_ports=True, app_target="127.0.0.1:9464")
    stack.up()
    prom = yaml.safe_load(stack.config_path("prometheus").read_text())
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in prom["scrape_configs"]}
    assert jobs == {
        "otel-collector": [stack.collector_metrics_url.split("/")[2]],
        "otel-collector-internal": [stack.collector_telemetry_url.split("/")[2]],
        "app": ["127.0.0.1:9464"],
        "prometheus": [stack.prometheus_url.split("/")[2]],
        "alertmanager": [stack.alertmanager_url.split("/")[2]],
        # The stores' own /metrics (jobs named as in compose/prometheus/prometheus.yml).
        "victorialogs": [stack.urls["victoria_logs"].split("/")[2]],
        "jaeger": [f"127.0.0.1:{stack._state.ports['jaeger']['metrics']}"],
    }
    check = subprocess.run(
        ["promtool", "check", "config", str(stack.config_path("prometheus"))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr

    # Prometheus loaded the rules and knows the local Alertmanager.
    def alertmanagers() -> list[str]:
        with urllib.request.urlopen(f"{stack.prometheus_url}/api/v1/alertmanagers") as resp:
            return [am["url"] for am in json.loads(resp.read())["data"]["activeAlertmanagers"]]

    assert process.wait_until(lambda: bool(alertmanagers()), timeout=10), "no Alertmanager"
    assert alertmanagers() == [f"{stack.alertmanager_url}/api/v2/alerts"]
    with urllib.request.urlopen(f"{stack.prometheus_url}/api/v1/rules") as resp:
        assert json.loads(resp.read())["data"]["groups"], "no rule group loaded"
    # Long enough for the SLO rules' 30-day budget window (as compose).
    with urllib.request.urlopen(f"{stack.prometheus_url}/api/v1/status/flags") as resp:
        assert json.loads(resp.read())["data"]["storage.tsdb.retention.time"] == "31d"

    am = stack.config_path("alertmanager")
    secrets = state_dir / "alertmanager" / "secrets"
    assert str(secrets) in am.read_text() and "/etc/alertmanager" not in am.read_text()
    assert {p.name for p in secrets.iterdir()} == {
        "slack_webhook_url",
        "smtp_password",
        "webhook_token",
    }
    assert all(p.stat().st_mode & 0o077 == 0 for p in secrets.iterdir()), "secrets not 0600"
    stack.down()


def test_receiver_overrides_reach_the_running_alertmanager(state_dir: Path) -> None:
    receivers = Receivers(
        webhook_url="http://127.0.0.1:5999/hook",
        slack_api_url="http://127.0.0.1:5998/slack",
        smtp_smarthost="127.0.0.1:5997",
    )
    stack = LocalStack(
        state_dir, free_ports=True, components=("alertmanager",), receivers=receivers
    )
    stack.up()
    with urllib.request.urlopen(f"{stack.alertmanager_url}/api/v2/status") as resp:
        loaded = yaml.safe_load(json.loads(resp.read())["config"]["original"])
    assert loaded["global"]["smtp_smarthost"] == "127.0.0.1:5997"
    assert loaded["global"]["smtp_require_tls"] is False
    webhooks = [
        hook["url"]
        for receiver in loaded["receivers"]
        for hook in receiver.get("webhook_configs", [])
    ]
    assert webhooks == ["http://127.0.0.1:5999/hook"]
    slack_secret = state_dir / "alertmanager" / "secrets" / "slack_webhook_url"
    assert slack_secret.read_text() == "http://127.0.0.1:5998/slack"
    stack.down()


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    argv = ["sh", "-c", "trap '' TERM; echo trapped; sleep 60 & wait; sleep 60"]
    proc = process.start(argv, log_path=tmp_path / "stubborn.log")
    assert process.wait_until(
        lambda: "trapped" in process.tail(tmp_path / "stubborn.log"), timeout=5
    )
    assert process.stop(proc.pid, argv, timeout=0.5) is process.StopResult.KILLED
    assert not process.is_running(proc.pid)
    assert process.stop(proc.pid, argv) is process.StopResult.NOT_RUNNING

    # The whole process group went, not only the pid: no orphaned `sleep 60`
    # (once init has reaped it, the group no longer exists).
    def group_gone() -> bool:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return True
        return False

    assert process.wait_until(group_gone, timeout=5), "a child of the killed process survived"
