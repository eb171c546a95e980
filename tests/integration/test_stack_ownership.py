"""`stack down` stops only what this state directory started, and the state dir is private.

The reproducers of issue 14: a ``state.json`` (or a whole state directory)
copied elsewhere made ``down`` there kill the original stack's processes; a
``.lock`` symlink made ``down`` truncate its target; a symlink at
``alertmanager/secrets/webhook_token`` made ``up`` overwrite its target; under
umask 022 the rendered ``alertmanager.yml`` (webhook URL and token), ``state.json``
and the logs were world-readable. Alertmanager alone is started (the quickest
real component); every process is stopped by pid at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_tdd.stack import process
from otel_tdd.stack.local import LocalStack
from otel_tdd.stack.private_files import UnsafePathError

pytestmark = pytest.mark.integration


def alertmanager_stack(state_dir: Path) -> LocalStack:
    return LocalStack(state_dir, free_ports=True, components=("alertmanager",))


@pytest.fixture
def running(tmp_path: Path) -> Iterator[LocalStack]:
    stack = alertmanager_stack(tmp_path / "original")
    stack.up()
    try:
        yield stack
    finally:
        stack.down()


def test_a_copied_state_json_cannot_make_down_kill_the_original(
    running: LocalStack, tmp_path: Path
) -> None:
    pid = running.pids["alertmanager"]
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(running.state_file, copy / "state.json")
    results = LocalStack(copy).down()
    assert [(name, result) for name, result, _ in results] == [
        ("alertmanager", process.StopResult.NOT_OURS)
    ]
    assert process.is_running(pid)
    assert running.is_running("alertmanager")


def test_a_copied_state_directory_cannot_make_down_kill_the_original(
    running: LocalStack, tmp_path: Path
) -> None:
    """Even with the original's id file: the process's working directory is not the copy's."""
    pid = running.pids["alertmanager"]
    copy = tmp_path / "full-copy"
    shutil.copytree(running.state_dir, copy, ignore=shutil.ignore_patterns("data"))
    results = LocalStack(copy).down()
    assert [result for _, result, _ in results] == [process.StopResult.NOT_OURS]
    assert process.is_running(pid)


def test_down_from_the_state_dir_that_started_it_still_stops_it(running: LocalStack) -> None:
    pid = running.pids["alertmanager"]
    results = running.down()
    assert [result for _, result, _ in results] == [process.StopResult.STOPPED]
    assert process.wait_until(lambda: not process.is_running(pid), timeout=5)


def test_a_process_without_the_state_dirs_id_is_not_ours(tmp_path: Path) -> None:
    argv = ["sleep", "60"]
    proc = process.start(argv, log_path=tmp_path / "sleep.log", stack_id="abc", cwd=tmp_path)
    other = process.start(argv, log_path=tmp_path / "other.log", cwd=tmp_path)
    try:
        ticks = process.start_ticks(proc.pid)
        assert ticks is not None
        cwd = str(tmp_path.resolve())
        assert process.is_ours(proc.pid, argv, process.Owner("abc", ticks, cwd))
        assert not process.is_ours(proc.pid, argv, process.Owner("xyz", ticks, cwd))
        assert not process.is_ours(proc.pid, argv, process.Owner("abc", ticks + 1, cwd))
        assert not process.is_ours(proc.pid, argv, process.Owner("abc", ticks, "/elsewhere"))
        assert not process.is_ours(other.pid, argv, process.Owner("abc", None, cwd))
        result = process.stop(other.pid, argv, timeout=1, owner=process.Owner("abc"))
        assert result is process.StopResult.NOT_OURS
        assert process.is_running(other.pid)
    finally:
        for child in (proc, other):
            assert process.stop(child.pid, argv, timeout=5) is process.StopResult.STOPPED


def test_a_lock_symlink_is_refused_and_its_target_left_intact(tmp_path: Path) -> None:
    state_dir = tmp_path / "stack"
    state_dir.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (state_dir / ".lock").symlink_to(victim)
    with pytest.raises(UnsafePathError, match=r"\.lock is a symlink"):
        LocalStack(state_dir).down()
    assert victim.read_text() == "precious\n"
    code, output = run_cli("down", state_dir=state_dir)
    assert code == 1 and ".lock is a symlink" in output and "Traceback" not in output
    assert victim.read_text() == "precious\n"


def test_a_secret_symlink_is_refused_and_its_target_left_intact(tmp_path: Path) -> None:
    state_dir = tmp_path / "stack"
    secrets = state_dir / "alertmanager" / "secrets"
    secrets.mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (secrets / "webhook_token").symlink_to(victim)
    stack = alertmanager_stack(state_dir)
    try:
        with pytest.raises(UnsafePathError, match="webhook_token is a symlink"):
            stack.up()
    finally:
        stack.down()
    assert victim.read_text() == "precious\n"


def test_a_last_ports_symlink_is_replaced_not_written_through(running: LocalStack) -> None:
    victim = running.state_dir.parent / "victim.txt"
    victim.write_text("precious\n")
    os.chmod(victim, 0o600)
    last_ports = running.state_dir / "last-ports.json"
    last_ports.symlink_to(victim)
    running.down()
    assert victim.read_text() == "precious\n"
    assert not last_ports.is_symlink()
    assert stat.S_IMODE(last_ports.stat().st_mode) == 0o600
    assert "alertmanager" in json.loads(last_ports.read_text())


def test_what_up_writes_is_private_whatever_the_umask(tmp_path: Path) -> None:
    state_dir = tmp_path / "stack"
    old = os.umask(0o022)
    try:
        stack = alertmanager_stack(state_dir)
        stack.up()
    finally:
        os.umask(old)
    try:
        files = [
            state_dir / "state.json",
            state_dir / ".stack-id",
            state_dir / ".lock",
            state_dir / "alertmanager" / "alertmanager.yml",
            state_dir / "alertmanager" / "secrets" / "webhook_token",
            state_dir / "logs" / "alertmanager.log",
        ]
        dirs = [
            state_dir,
            state_dir / "logs",
            state_dir / "alertmanager",
            state_dir / "alertmanager" / "secrets",
            state_dir / "alertmanager" / "data",
        ]
        modes = {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in files + dirs}
        assert {p: m for p, m in modes.items() if Path(p) in files} == {
            str(p): "0o600" for p in files
        }
        assert {p: m for p, m in modes.items() if Path(p) in dirs} == {
            str(p): "0o700" for p in dirs
        }
        state = json.loads((state_dir / "state.json").read_text())
        assert state["processes"]["alertmanager"]["start_ticks"] > 0
    finally:
        stack.down()


def run_cli(*args: str, state_dir: Path) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "otel_tdd.cli", "stack", *args, "--dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr
