"""``state.json``: what ``up`` started (pids, argv, ports), saved atomically under a lock."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from otel_tdd.stack import process
from otel_tdd.stack.component import StackError
from otel_tdd.stack.private_files import (
    exclusive_lock,
    make_private_dir,
    open_private,
    read_private,
    write_private,
)

__all__ = ["STATE_VERSION", "ProcessRecord", "State", "StateStore"]

STATE_VERSION = 2  # 2: start_ticks per process (ownership)


@dataclass
class ProcessRecord:
    pid: int
    argv: list[str]
    started_at: str
    # Against pid reuse (process.Owner): when the process started, from /proc/PID/stat.
    start_ticks: int | None = None

    @classmethod
    def of(cls, pid: int, argv: list[str]) -> ProcessRecord:
        """A process just started."""
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return cls(pid, argv, now, process.start_ticks(pid))


@dataclass
class State:
    ports: dict[str, dict[str, int]] = field(default_factory=dict)
    processes: dict[str, ProcessRecord] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "ports": self.ports,
            "processes": {name: asdict(proc) for name, proc in self.processes.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> State:
        return cls(
            ports={c: {k: int(v) for k, v in p.items()} for c, p in data.get("ports", {}).items()},
            processes={
                name: ProcessRecord(
                    int(p["pid"]),
                    [str(a) for a in p["argv"]],
                    str(p.get("started_at")),
                    None if p.get("start_ticks") is None else int(p["start_ticks"]),
                )
                for name, p in data.get("processes", {}).items()
            },
        )


class StateStore:
    """The files of one state directory that say what runs: state.json, last-ports.json,
    .stack-id and .lock. Every write is private and atomic (docs/local-stack.md)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def last_ports_file(self) -> Path:
        return self.state_dir / "last-ports.json"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One `up`/`down` at a time per state dir (two shells, two test workers)."""
        make_private_dir(self.state_dir, self.state_dir)
        with exclusive_lock(self.state_dir / ".lock", root=self.state_dir):
            yield

    def load(self) -> State:
        try:
            return State.from_json(json.loads(read_private(self.state_file)))
        except FileNotFoundError:
            return State()
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StackError(
                f"{self.state_file} is unreadable ({exc}); stop the processes it named "
                "yourself if any still run, then delete it"
            ) from exc

    def save(self, state: State) -> None:
        if not state.processes:
            self.state_file.unlink(missing_ok=True)
            return
        self._replace(self.state_file, json.dumps(state.to_json(), indent=2) + "\n")

    def _replace(self, path: Path, text: str) -> None:
        tmp = path.with_suffix(".tmp")
        write_private(tmp, text, self.state_dir)
        os.replace(tmp, path)  # replaces a link itself, never its target

    def remember_ports(self, ports: Mapping[str, Mapping[str, int]]) -> None:
        """Note the ports of a stack that stopped: the next ``up --free-ports`` here takes
        them again while they are free, so an app still exporting reconnects."""
        if ports:
            self._replace(self.last_ports_file, json.dumps(ports) + "\n")

    def last_ports(self) -> dict[str, dict[str, int]]:
        try:
            data = json.loads(self.last_ports_file.read_text(encoding="utf-8"))
            return {c: {k: int(v) for k, v in p.items()} for c, p in data.items()}
        except (OSError, ValueError, AttributeError, TypeError):
            return {}  # none yet, or unreadable: pick free ports as before

    @property
    def stack_id(self) -> str:
        """This state directory's random id, made with it (``.stack-id``, 0600).

        Every process ``up`` starts carries it as ``OTEL_TDD_STACK_ID``; ``down``
        signals only processes that do. A ``state.json`` copied into another
        directory meets another id there.
        """
        path = self.state_dir / ".stack-id"
        try:
            return read_private(path).strip()
        except FileNotFoundError:
            pass
        token = secrets.token_hex(16)
        try:
            fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, root=self.state_dir)
        except FileExistsError:  # another `up` made it first
            return read_private(path).strip()
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(token + "\n")
        return token

    def owner(self, name: str, proc: ProcessRecord) -> process.Owner:
        """The id of *this* state directory and *its* component directory as the working
        directory: a copy of state.json, or of the whole directory, has neither."""
        try:
            stack_id = read_private(self.state_dir / ".stack-id").strip()
        except FileNotFoundError:
            # No id, so nothing here was started by this version of `up`: a NUL can be in
            # no environment, so no process matches (and status does not create the file).
            stack_id = "\0"
        cwd = os.path.realpath(self.state_dir / name)
        return process.Owner(stack_id, proc.start_ticks, cwd)
