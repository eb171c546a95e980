"""Process supervision for the local stack: ports, start, readiness, identity, stop.

Nothing is signalled on what ``state.json`` says alone: the pid must run the exact
command line we started and show the state directory's :class:`Owner` (its id in
the environment, its start time, its working directory; docs/local-stack.md).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from otel_tdd.stack.private_files import open_private

__all__ = [
    "STACK_ID_ENV",
    "Owner",
    "StopResult",
    "free_ports",
    "http_ok",
    "is_ours",
    "is_running",
    "port_is_free",
    "read_cmdline",
    "running_children",
    "start",
    "start_ticks",
    "stop",
    "stop_children",
    "tail",
    "wait_until",
]

LOOPBACK = "127.0.0.1"

# Processes this interpreter started, so that it can reap them (no zombie keeps a
# pid alive after `stop`) and so a test session can make sure none outlives it.
_children: dict[int, subprocess.Popen[bytes]] = {}


class StopResult(Enum):
    """What :func:`stop` found and did."""

    STOPPED = "stopped"  # exited after SIGTERM
    KILLED = "killed"  # ignored SIGTERM for the timeout, then SIGKILL
    NOT_RUNNING = "not running"  # no such process (already gone)
    NOT_OURS = "not ours"  # the pid runs something else: left alone


# --- ports -----------------------------------------------------------------------


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct ports the kernel says are free, held open together while picked."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            socks.append(sock)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True when ``host:port`` can be bound now (what the component is about to do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option the Go servers set, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


# --- identity ----------------------------------------------------------------------


def _proc_state(pid: int) -> str | None:
    """The one-letter state from /proc/PID/stat ('Z' for a zombie), or None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) S ..." -- comm may hold spaces and parentheses: split at the last ')'.
    return stat.rsplit(")", 1)[-1].split()[0]


def _reap(pid: int) -> None:
    """Collect the exit status of a child of ours, so its pid is really gone."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        _children.pop(pid, None)


def is_running(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie counts as gone)."""
    if pid <= 0:
        return False
    _reap(pid)
    if Path("/proc").is_dir():
        state = _proc_state(pid)
        return state is not None and state != "Z"
    try:  # pragma: no cover - systems without /proc
        os.kill(pid, 0)
    except ProcessLookupError:  # pragma: no cover
        return False
    except PermissionError:  # pragma: no cover - alive, but someone else's
        return True
    return True  # pragma: no cover


def read_cmdline(pid: int) -> list[str] | None:
    """The argv ``pid`` runs, or None when there is no such (live) process."""
    if not is_running(pid):
        return None
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        if Path("/proc").is_dir():
            return None
        return _ps_cmdline(pid)  # pragma: no cover - macOS and friends
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _ps_cmdline(pid: int) -> list[str] | None:  # pragma: no cover - no /proc
    result = subprocess.run(
        ["ps", "-o", "command=", "-p", str(pid)],
        capture_output=True,
        text=True,
        check=False,
    )
    line = result.stdout.strip()
    return line.split() if result.returncode == 0 and line else None


STACK_ID_ENV = "OTEL_TDD_STACK_ID"


@dataclass(frozen=True)
class Owner:
    """What a process must show to be one that this state directory started.

    ``stack_id``: the random id of the state directory, in the process's
    environment as ``OTEL_TDD_STACK_ID``. ``start_ticks``: its start time from
    ``/proc/PID/stat`` when we started it (None: not recorded). ``cwd``: the
    working directory we started it in.
    """

    stack_id: str
    start_ticks: int | None = None
    cwd: str | None = None


def start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])  # fields after "(comm)" start at field 3
    except (IndexError, ValueError):
        return None


def _environ_has(pid: int, name: str, value: str) -> bool:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False  # gone, or someone else's process: not ours
    return f"{name}={value}".encode() in raw.split(b"\0")


def _owned_by(pid: int, owner: Owner) -> bool:
    if not _environ_has(pid, STACK_ID_ENV, owner.stack_id):
        return False
    if owner.start_ticks is not None and start_ticks(pid) != owner.start_ticks:
        return False
    if owner.cwd is not None:
        try:
            if os.readlink(f"/proc/{pid}/cwd") != owner.cwd:
                return False
        except OSError:
            return False
    return True


def is_ours(pid: int, argv: Sequence[str], owner: Owner | None = None) -> bool:
    """True when ``pid`` runs exactly ``argv`` (and shows ``owner``): safe to signal.

    ``argv`` names files in the stack's own state directory, so a pid recycled by
    an unrelated process never matches; ``owner`` ties it to this very state
    directory (see the module docstring). Without /proc there is no owner check.
    """
    cmdline = read_cmdline(pid)
    if cmdline is None:
        return False
    if Path("/proc").is_dir():
        return cmdline == list(argv) and (owner is None or _owned_by(pid, owner))
    return " ".join(cmdline) == " ".join(argv)  # pragma: no cover - ps splits on spaces


# --- start, wait, stop ----------------------------------------------------------------


def start(
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stack_id: str | None = None,
    root: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` detached from our terminal, stdout and stderr into ``log_path``.

    A new session means Ctrl-C in the shell that ran ``stack up`` does not reach
    the component, and the component keeps running after that command exits.
    ``stack_id`` goes into its environment as ``OTEL_TDD_STACK_ID`` (see
    :class:`Owner`). The log is 0600 and never opened through a symlink.
    """
    environment = dict(env) if env is not None else None
    if stack_id is not None:
        environment = {**(environment if environment is not None else os.environ)}
        environment[STACK_ID_ENV] = stack_id
    with os.fdopen(open_private(log_path, root=root), "wb") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    _children[proc.pid] = proc
    return proc


def wait_until(
    probe: Callable[[], bool],
    *,
    timeout: float,
    alive: Callable[[], bool] | None = None,
    interval: float = 0.1,
) -> bool:
    """Poll ``probe`` until it is true (True), time runs out or ``alive()`` turns false (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None and not alive():
            return False
        with contextlib.suppress(OSError, ValueError):
            if probe():
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _wait_gone(pid: int, timeout: float) -> bool:
    child = _children.get(pid)
    if child is not None:
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        _children.pop(pid, None)
        return True
    return wait_until(lambda: not is_running(pid), timeout=timeout, interval=0.05)


def stop(
    pid: int, argv: Sequence[str], *, timeout: float = 15.0, owner: Owner | None = None
) -> StopResult:
    """SIGTERM ``pid`` if it still runs ``argv`` (as ``owner``'s); SIGKILL it after ``timeout``.

    The components flush and exit on SIGTERM (the Collector drains its exporters,
    Prometheus closes its TSDB); SIGKILL is only for one that hangs.
    """
    if not is_running(pid):
        _children.pop(pid, None)
        return StopResult.NOT_RUNNING
    if not is_ours(pid, argv, owner):
        return StopResult.NOT_OURS
    try:
        _signal(pid, signal.SIGTERM)
    except ProcessLookupError:
        return StopResult.NOT_RUNNING
    if _wait_gone(pid, timeout):
        return StopResult.STOPPED
    with contextlib.suppress(ProcessLookupError):
        _signal(pid, signal.SIGKILL)
    _wait_gone(pid, 10.0)
    return StopResult.KILLED


def _signal(pid: int, signum: int) -> None:
    """Signal ``pid``'s whole process group when it leads its own (as :func:`start` makes
    it), so a helper it spawned goes too; otherwise just ``pid``."""
    try:
        leads_group = os.getpgid(pid) == pid
    except ProcessLookupError:
        raise
    except OSError:
        leads_group = False
    if leads_group:
        os.killpg(pid, signum)
    else:
        os.kill(pid, signum)


def running_children() -> list[int]:
    """Pids this interpreter started that still run."""
    return [pid for pid in list(_children) if is_running(pid)]


def stop_children(timeout: float = 10.0) -> list[int]:
    """Stop every process this interpreter started and that still runs; return their pids.

    The test session's safety net: a fixture that failed half-way must not leave
    a Collector or Prometheus behind.
    """
    leftovers = running_children()
    for pid in leftovers:
        child = _children[pid]
        stop(pid, [str(a) for a in _argv_of(child)], timeout=timeout)
    return leftovers


def _argv_of(child: subprocess.Popen[bytes]) -> Sequence[str]:
    args = child.args
    if isinstance(args, (str, bytes, os.PathLike)):
        return [os.fsdecode(args)]
    return [os.fsdecode(a) for a in args]


# --- probes and logs ----------------------------------------------------------------


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when ``GET url`` answers 200 (readiness endpoints)."""
    return http_probe(url, timeout) is True


def http_probe(url: str, timeout: float = 1.0) -> bool | None:
    """True: ``GET url`` answered 200. False: refused, or another status. None: no
    answer within ``timeout`` (busy, not known to be down)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status) == 200
    except urllib.error.HTTPError:
        return False
    except urllib.error.URLError as error:
        return None if isinstance(error.reason, TimeoutError) else False
    except TimeoutError:
        return None
    except (OSError, ValueError):
        return False


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ('' if it does not exist)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines))
    except FileNotFoundError:
        return ""
