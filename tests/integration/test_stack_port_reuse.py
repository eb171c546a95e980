"""``stack down`` then ``stack up --free-ports`` on one state dir: the same ports again.

An app started against the first Collector keeps exporting to its address; if the
second ``up`` picked new ports, it would never reconnect (issue 13, defect 7).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from otel_tdd.stack import process
from otel_tdd.stack.local import LocalStack

pytestmark = pytest.mark.integration


def collector_ports(state_dir: Path) -> dict[str, int]:
    stack = LocalStack(state_dir, free_ports=True, components=("collector",))
    try:
        stack.up()
        state = json.loads((state_dir / "state.json").read_text())
        return {f"collector.{k}": int(v) for k, v in state["ports"]["collector"].items()}
    finally:
        stack.down()


def test_up_after_down_reuses_the_recorded_ports_while_they_are_free(tmp_path: Path) -> None:
    state_dir = tmp_path / "stack"
    first = collector_ports(state_dir)
    assert collector_ports(state_dir) == first

    # One of them taken by someone else meanwhile: that one moves, the others stay.
    name, busy = sorted(first.items())[0]
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind((process.LOOPBACK, busy))
        holder.listen()
        third = collector_ports(state_dir)
    assert third[name] != busy
    assert {k: v for k, v in third.items() if k != name} == {
        k: v for k, v in first.items() if k != name
    }
