"""Two-tier mode's stand-in for the k8s resolver: ``stack rebalance --watch`` as a process.

Every second it routes the agent to the gateways that answer, so a dead gateway
leaves the agent's ring without anyone typing a command (docs/scaling.md).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from otel_tdd.stack.component import Component, Launch, Progress, StackContext

__all__ = ["READY_LINE", "Resolver"]

# The resolver's first log line: its readiness (it serves no HTTP).
READY_LINE = "watching the gateways"


class Resolver(Component):
    """Comes up last and goes down first, so it never sees a half-built stack."""

    kind = "resolver"
    start_rank = 70
    selectable = False

    def find_binary(self, progress: Progress) -> str:
        return sys.executable  # `python -m otel_tdd.stack.cli rebalance --watch`

    def argv(self, ctx: StackContext, python: str) -> list[str]:
        return [
            python,
            "-m",
            "otel_tdd.stack.cli",
            "rebalance",
            f"--dir={ctx.state_dir.resolve()}",
            f"--watch={ctx.config.resolver_interval or 1:g}",
            f"--timeout={ctx.config.start_timeout:g}",
        ]

    def prepare(self, ctx: StackContext, binary: str) -> Launch:
        # It runs in its own directory: make sure it imports the otel_tdd this is.
        package_root = str(Path(__file__).resolve().parents[2])
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, path]))}
        return Launch(self.argv(ctx, binary), env)

    def restart_reason(self, ctx: StackContext, argv: Sequence[str], wanted: bool) -> str | None:
        """Another --resolver-interval (0: none) than the one running."""
        if not ctx.config.gateways:
            return None
        if wanted and list(argv) == self.argv(ctx, argv[0]):
            return None
        return "its interval changed" if wanted else "not wanted"

    def is_ready(self, ctx: StackContext) -> bool:
        try:
            return READY_LINE in ctx.log_path(self.name).read_text(errors="replace")
        except FileNotFoundError:
            return False

    def readiness(self, ctx: StackContext) -> str:
        return "its log"

    def main_url(self, ctx: StackContext) -> str:
        return f"checks the gateways every {ctx.config.resolver_interval or 1:g}s"
