"""Real PostgreSQL and Redis servers for the matrix rows, on free 127.0.0.1 ports.

Plain context managers (no conftest.py under tests/: a second ``conftest`` module
replaces tests/conftest.py in sys.modules); each test module wraps them in a
module-scoped fixture. A missing binary FAILS with the install line, never skips.
Each server is started by us as a child process and stopped by its pid (a
``finally``: nothing is left running when a test fails).

PostgreSQL refuses to run as root, and CI runs as root: there ``initdb`` and
``postgres`` run as ``nobody`` through ``setpriv`` (which execs, so the pid we
hold is the postmaster's own), in a directory outside pytest's root-only tmp.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from run_helpers import kill_group

from otel_tdd.stack.process import free_ports

PG_BIN = Path(os.environ.get("OTEL_TDD_PG_BIN", "/usr/lib/postgresql/15/bin"))
INSTALL = "install them with ./dev setup (apt-get install postgresql redis-server)"


def _binary(path: Path | str) -> str:
    found = shutil.which(str(path))
    if found is None:
        pytest.fail(f"this test needs {path}: not found; {INSTALL}", pytrace=False)
    return found


def _wait(ready: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{log.read_text()}", pytrace=False)
        with contextlib.suppress(OSError):
            if ready():
                return
        time.sleep(0.1)
    pytest.fail(f"{what} not ready in 30s:\n{log.read_text()}", pytrace=False)


def _stop(proc: subprocess.Popen[bytes], signum: int) -> None:
    """Stop the server we started, by its pid: ``signum`` first, SIGKILL to its process
    group (started with ``start_new_session=True``) if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signum)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            kill_group(proc)  # with PostgreSQL's backends / any child the server left


# --- PostgreSQL ------------------------------------------------------------------------------


@dataclass
class Postgres:
    host: str
    port: int
    user: str
    dbname: str

    @property
    def dsn(self) -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={self.dbname}"

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"


def _as_unprivileged() -> tuple[list[str], int | None, int | None]:
    """(command prefix, uid, gid) to run PostgreSQL's programs: ``nobody`` when we are root."""
    if os.geteuid() != 0:
        return [], None, None
    nobody = pwd.getpwnam("nobody")
    prefix = [_binary("setpriv"), f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}"]
    return [*prefix, "--clear-groups"], nobody.pw_uid, nobody.pw_gid


@contextlib.contextmanager
def running_postgres() -> Iterator[Postgres]:
    """A fresh cluster (``initdb``, trust auth on loopback), its server on a free port."""
    initdb, postgres = _binary(PG_BIN / "initdb"), _binary(PG_BIN / "postgres")
    prefix, uid, gid = _as_unprivileged()
    root = Path(tempfile.mkdtemp(prefix="otel-tdd-pg-"))
    try:
        if uid is not None and gid is not None:
            os.chown(root, uid, gid)
        data, log = root / "data", root / "postgres.log"
        init = subprocess.run(
            [*prefix, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
             "--no-sync", "--no-instructions"],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        if init.returncode != 0:
            pytest.fail(f"initdb failed:\n{init.stdout}\n{init.stderr}", pytrace=False)
        (port,) = free_ports(1)
        argv = [*prefix, postgres, "-D", str(data), "-p", str(port), "-k", str(root),
                "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]  # fmt: skip
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
            )
        try:
            server = Postgres("127.0.0.1", port, "postgres", "postgres")
            isready = [_binary("pg_isready"), "-h", server.host, "-p", str(port), "-q"]
            accepting = lambda: subprocess.run(isready, check=False).returncode == 0  # noqa: E731
            _wait(accepting, proc, log, "postgres")
            yield server
        finally:
            _stop(proc, signal.SIGINT)  # PostgreSQL's "fast" shutdown
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- Redis -----------------------------------------------------------------------------------


@dataclass
class Redis:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"


@contextlib.contextmanager
def running_redis(directory: Path) -> Iterator[Redis]:
    """``redis-server`` on a free loopback port, no persistence, its files in ``directory``."""
    binary = _binary("redis-server")
    (port,) = free_ports(1)
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "redis.log"
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(directory), "--daemonize", "no",
            "--protected-mode", "yes"]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
    try:
        server = Redis("127.0.0.1", port)

        def ping() -> bool:
            import socket

            with socket.create_connection((server.host, port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")

        _wait(ping, proc, log, "redis-server")
        yield server
    finally:
        _stop(proc, signal.SIGTERM)
