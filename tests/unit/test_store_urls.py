"""Where `otel-tdd trace/traces/logs/exemplars` look: flag, variable, running stack, compose port.

The "running stack" is a state directory as `otel-tdd stack up` leaves it: a
state.json naming a real process (a `sleep`) started the way `up` starts its
components, so the ownership check that decides "the stack runs it" is the real one.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_tdd import store_urls
from otel_tdd.stack import process
from otel_tdd.stack.private_files import make_private_dir
from otel_tdd.stack.state import ProcessRecord, State, StateStore
from otel_tdd.store_http import ENV_JAEGER_URL, ENV_LOGS_URL, ENV_PROMETHEUS_URL
from otel_tdd.stores_cli import exemplars_cli, logs_cli, trace_cli

TRACE_ID = "0123456789abcdef0123456789abcdef"


def dead_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class FakeStack:
    """A state dir whose state.json names running processes (``sleep``) as components."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        make_private_dir(state_dir, state_dir)
        self.store = StateStore(state_dir)
        self.state = State()
        self.procs: list[tuple[int, list[str]]] = []

    def run(self, name: str, ports: dict[str, int]) -> None:
        argv = [sys.executable, "-c", "import time; time.sleep(120)"]
        home = make_private_dir(self.state_dir / name, self.state_dir)
        make_private_dir(self.state_dir / "logs", self.state_dir)
        proc = process.start(
            argv,
            log_path=self.state_dir / "logs" / f"{name}.log",
            cwd=home,
            stack_id=self.store.stack_id,
            root=self.state_dir,
        )
        self.procs.append((proc.pid, argv))
        self.state.ports[name] = ports
        self.state.processes[name] = ProcessRecord.of(proc.pid, argv)
        self.store.save(self.state)

    def stop_all(self) -> None:
        for pid, argv in self.procs:
            process.stop(pid, argv, timeout=5)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[FakeStack]:
    fake = FakeStack(tmp_path / "stack")
    yield fake
    fake.stop_all()


@pytest.fixture(autouse=True)
def no_urls_in_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (ENV_JAEGER_URL, ENV_LOGS_URL, ENV_PROMETHEUS_URL):
        monkeypatch.delenv(name, raising=False)
    # No stack in the default state dir (./.otel-tdd/stack of whoever runs the tests).
    monkeypatch.setenv("OTEL_TDD_STACK_DIR", str(tmp_path / "no-stack-here"))


def test_the_running_stack_supplies_each_stores_url(stack: FakeStack) -> None:
    stack.run("jaeger", {"query_http": 26686, "otlp_grpc": 24317, "health": 23135})
    stack.run("victoria-logs", {"http": 29428})
    stack.run("prometheus", {"web": 29090})
    env = {"OTEL_TDD_STACK_DIR": str(stack.state_dir)}
    assert store_urls.resolve_url(None, ENV_JAEGER_URL, environ=env) == "http://127.0.0.1:26686"
    assert store_urls.resolve_url(None, ENV_LOGS_URL, environ=env) == "http://127.0.0.1:29428"
    assert store_urls.resolve_url(None, ENV_PROMETHEUS_URL, environ=env) == "http://127.0.0.1:29090"


def test_flag_then_variable_win_over_the_stack(stack: FakeStack) -> None:
    stack.run("jaeger", {"query_http": 26686})
    env = {"OTEL_TDD_STACK_DIR": str(stack.state_dir), ENV_JAEGER_URL: "http://j.example:1/"}
    assert store_urls.resolve_url(None, ENV_JAEGER_URL, environ=env) == "http://j.example:1"
    assert (
        store_urls.resolve_url("http://flag.example:2/", ENV_JAEGER_URL, environ=env)
        == "http://flag.example:2"
    )


def test_a_stack_without_the_store_or_with_it_stopped_gives_compose_defaults(
    stack: FakeStack,
) -> None:
    """--without-stores runs no Jaeger; a component whose process is gone is not "up"."""
    stack.run("prometheus", {"web": 29090})
    env = {"OTEL_TDD_STACK_DIR": str(stack.state_dir)}
    assert store_urls.resolve_url(None, ENV_JAEGER_URL, environ=env) == "http://127.0.0.1:16686"
    stack.stop_all()
    assert store_urls.resolve_url(None, ENV_PROMETHEUS_URL, environ=env) == "http://127.0.0.1:9090"


def test_no_state_dir_at_all_gives_compose_defaults(tmp_path: Path) -> None:
    env = {"OTEL_TDD_STACK_DIR": str(tmp_path / "missing")}
    assert store_urls.resolve_url(None, ENV_LOGS_URL, environ=env) == "http://127.0.0.1:9428"
    assert not (tmp_path / "missing").exists(), "looking must not create the state dir"


def test_the_commands_use_the_stack_from_the_default_state_dir(
    stack: FakeStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The ports are dead: the error shows which URL each command asked."""
    jaeger, logs, prometheus = dead_port(), dead_port(), dead_port()
    stack.run("jaeger", {"query_http": jaeger})
    stack.run("victoria-logs", {"http": logs})
    stack.run("prometheus", {"web": prometheus})
    monkeypatch.setenv("OTEL_TDD_STACK_DIR", str(stack.state_dir))
    assert trace_cli([TRACE_ID]) == 1
    assert f"cannot reach Jaeger at http://127.0.0.1:{jaeger}/" in capsys.readouterr().err
    assert logs_cli(["--trace", TRACE_ID]) == 1
    assert f"cannot reach VictoriaLogs at http://127.0.0.1:{logs}/" in capsys.readouterr().err
    assert exemplars_cli(["x_seconds"]) == 1
    assert f"cannot reach Prometheus at http://127.0.0.1:{prometheus}/" in capsys.readouterr().err


def test_nothing_answering_says_to_run_stack_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENV_JAEGER_URL, f"http://127.0.0.1:{dead_port()}")
    assert trace_cli([TRACE_ID]) == 1
    err = capsys.readouterr().err
    assert err.startswith("otel-tdd trace: error: cannot reach Jaeger at "), err
    assert "start the local stack with `otel-tdd stack up`" in err, err
    assert "docker compose -f compose/docker-compose.yml up -d jaeger victoria-logs" in err, err
    assert "--jaeger URL or set OTEL_TDD_JAEGER_URL" in err, err
