"""The kill path of tests/run_helpers.running(): a test that fails mid-block leaves no
child of the command behind (a gunicorn worker, a Celery pool child), not only its top pid."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from run_helpers import running

pytestmark = pytest.mark.integration

# A parent that starts a child which ignores SIGTERM, prints its pid and waits.
PARENT = """
import signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"])
print(child.pid, flush=True)
time.sleep(300)
"""


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_the_kill_path_reaches_the_commands_children(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError),
        running([sys.executable, "-c", PARENT], dict(os.environ), tmp_path, "parent") as command,
    ):
        deadline = time.monotonic() + 30
        while not command.stdout_path.read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.1)
        child = int(command.stdout_path.read_text().split()[0])
        assert alive(child)
        raise RuntimeError("the test failed here")  # the block ends by an exception
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child), f"child {child} of the killed command still runs"
