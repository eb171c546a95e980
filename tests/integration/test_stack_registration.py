"""Adding a kind of process to the stack is one Component class and one registration.

A stand-in kind (Python's http.server) registered in ``registry.KINDS`` is
started by ``up``, watched by ``status``, listed by ``urls`` and stopped by
``down``, with no other change anywhere.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from otel_tdd.stack import process, registry
from otel_tdd.stack.component import Component, Launch, Progress, StackContext, Url
from otel_tdd.stack.local import LocalStack

pytestmark = pytest.mark.integration


class Echo(Component):
    """A static file server: the smallest process with a port and a ready URL."""

    kind = "echo"
    start_rank = 15
    default_ports = {"http": 18080}

    def find_binary(self, progress: Progress) -> str:
        return sys.executable

    def prepare(self, ctx: StackContext, binary: str) -> Launch:
        port = str(ctx.port(self.name, "http"))
        return Launch([binary, "-m", "http.server", port, "--bind", "127.0.0.1"])

    def ready_url(self, ctx: StackContext) -> str:
        return ctx.url(self.name, "http", "/")

    def main_url(self, ctx: StackContext) -> str:
        return ctx.url(self.name, "http")

    def urls(self, ctx: StackContext) -> list[Url]:
        return [Url("echo", "Echo", self.main_url(ctx))]


def test_a_registered_component_is_started_watched_and_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "KINDS", (*registry.KINDS, Echo))  # the one registration
    lines: list[str] = []
    stack = LocalStack(
        tmp_path / "stack", free_ports=True, components=("echo",), progress=lines.append
    )
    try:
        (row,) = stack.up()
        assert (row.name, row.state, row.healthy) == ("echo", "running", True)
        assert any(line.startswith("echo          ready in") for line in lines), lines
        assert list(stack.urls) == ["echo"] and process.http_ok(stack.urls["echo"] + "/")
        pid = stack.pids["echo"]
    finally:
        stack.down()
    assert process.wait_until(lambda: not process.is_running(pid), timeout=5)
    assert f"echo          stopped (pid {pid})" in lines
