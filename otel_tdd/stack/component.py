"""What the stack knows about one kind of process: the ``Component`` base class.

A component says which binary it runs, how to launch it (files, argv, env), when
it is ready, where it answers and what Prometheus scrapes of it. ``LocalStack``
only orchestrates; adding a kind is one class here plus one line in ``registry``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

from otel_tdd.stack import process
from otel_tdd.stack.render import Receivers, loopback

__all__ = [
    "Component",
    "Launch",
    "Progress",
    "StackContext",
    "StackError",
    "StackOptions",
    "Url",
]

Progress = Callable[[str], None]


class StackError(Exception):
    """The stack cannot do what was asked; the message names the component and what to do."""

    def __init__(self, message: str, component: str | None = None) -> None:
        self.component = component
        super().__init__(f"{component}: {message}" if component else message)


class StackOptions(Protocol):
    """What components read of the stack's configuration (``config.StackConfig`` is one)."""

    @property
    def gateways(self) -> int: ...
    @property
    def resolver_interval(self) -> float | None: ...
    @property
    def start_timeout(self) -> float: ...
    @property
    def collector_config(self) -> Path | None: ...
    @property
    def collector_env(self) -> Mapping[str, str]: ...
    @property
    def jsonl_files(self) -> bool: ...
    @property
    def app_target(self) -> str | None: ...
    @property
    def rules_dir(self) -> Path | None: ...
    @property
    def slo_rules_dir(self) -> Path | None: ...
    @property
    def secrets_dir(self) -> Path | None: ...
    @property
    def receivers(self) -> Receivers: ...


@dataclass(frozen=True)
class Launch:
    """How to start one process: its command line and environment (None: ours)."""

    argv: list[str]
    env: dict[str, str] | None = None


@dataclass(frozen=True)
class Url:
    """One line of ``stack up``'s URL list: a key for :attr:`LocalStack.urls`, a label, a URL."""

    key: str
    label: str
    url: str


@dataclass
class StackContext:
    """What a component may know of the stack it runs in.

    ``ports``: every process's ports (``{"prometheus": {"web": 9090}}``);
    ``members``: the components of this run that have ports, in start order.
    """

    state_dir: Path
    config: StackOptions
    ports: Mapping[str, Mapping[str, int]]
    members: Sequence[Component] = ()
    progress: Progress = field(default=lambda _line: None)

    def port(self, name: str, port: str) -> int:
        try:
            return self.ports[name][port]
        except KeyError:
            raise StackError(
                f"no {port} port known: the stack in {self.state_dir} is not up", name
            ) from None

    def address(self, name: str, port: str) -> str:
        """``127.0.0.1:PORT`` of one of ``name``'s ports."""
        return loopback(self.port(name, port))

    def url(self, name: str, port: str, path: str = "") -> str:
        return f"http://{self.address(name, port)}{path}"

    def home(self, name: str) -> Path:
        """A process's own directory (its working directory, configs and data)."""
        return self.state_dir / name

    def log_path(self, name: str) -> Path:
        return self.state_dir / "logs" / f"{name}.log"

    def member(self, name: str) -> Component | None:
        return next((c for c in self.members if c.name == name), None)


class Component:
    """One process of the stack. Subclasses set the class attributes and :meth:`prepare`."""

    kind: ClassVar[str]
    # Lower starts earlier and stops later: a process starts after what it sends to.
    start_rank: ClassVar[int]
    # A name for `--components`; False for processes another component expands into.
    selectable: ClassVar[bool] = True
    # The standard ports (the same as compose publishes); --free-ports picks others.
    default_ports: ClassVar[Mapping[str, int]] = {}
    binary_names: ClassVar[tuple[str, ...]] = ()
    env_bin: ClassVar[str | None] = None
    install_hint: ClassVar[str] = ""
    config_name: ClassVar[str] = "config.yaml"
    # How `stack logs` names this kind in its help (`gateway-N`).
    name_pattern: ClassVar[str] = ""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or self.kind

    @property
    def index(self) -> int:
        """Orders processes of one kind (``gateway-2`` after ``gateway-1``)."""
        return 0

    # -- which processes

    @classmethod
    def owns(cls, name: str) -> bool:
        """Whether process ``name`` is one of this kind."""
        return name == cls.kind

    @classmethod
    def expand(cls, config: StackOptions) -> list[str]:
        """The processes that selecting this component runs."""
        return [cls.kind]

    @classmethod
    def knobs(cls) -> dict[str, str]:
        """Environment variables for ``otel-tdd stack --help``."""
        if cls.env_bin is None:
            return {}
        names = ", ".join(f"`{n}`" for n in cls.binary_names)
        return {cls.env_bin: f"the {cls.kind} binary (default: {names} on PATH)"}

    @property
    def ports(self) -> Mapping[str, int]:
        """This process's port names and standard numbers."""
        return self.default_ports

    # -- launch

    def find_binary(self, progress: Progress) -> str:
        """The executable to run: ``env_bin`` if set, else the first of ``binary_names``."""
        override = os.environ.get(self.env_bin) if self.env_bin else None
        if override:
            path = shutil.which(override)
            if path is None:
                raise StackError(
                    f"{self.env_bin}={override} is not an executable; "
                    f"install with: {self.install_hint}",
                    self.kind,
                )
            return path
        path = next((p for p in map(shutil.which, self.binary_names) if p), None)
        if path is None:
            names = " or ".join(f"`{n}`" for n in self.binary_names)
            raise StackError(
                f"{names} not found on PATH; install with: {self.install_hint}", self.kind
            )
        return path

    def config_path(self, state_dir: Path) -> Path:
        return state_dir / self.name / self.config_name

    def prepare(self, ctx: StackContext, binary: str) -> Launch:
        """Render this process's files into the state directory; return how to start it."""
        raise NotImplementedError

    def restart_reason(self, ctx: StackContext, argv: Sequence[str], wanted: bool) -> str | None:
        """Why a running process of this kind must be restarted by ``up`` (None: keep it)."""
        return None

    # -- readiness and endpoints

    def ready_url(self, ctx: StackContext) -> str:
        raise NotImplementedError

    def is_ready(self, ctx: StackContext) -> bool:
        return process.http_ok(self.ready_url(ctx))

    def readiness(self, ctx: StackContext) -> str:
        """What :meth:`is_ready` waits on, for messages."""
        return self.ready_url(ctx)

    def main_url(self, ctx: StackContext) -> str:
        """The URL ``status`` and ``up`` show for this process."""
        raise NotImplementedError

    def urls(self, ctx: StackContext) -> list[Url]:
        """Every endpoint worth printing after ``up``."""
        return []

    def scrape_targets(self, ctx: StackContext) -> dict[str, list[str]]:
        """Prometheus job name -> the ``HOST:PORT`` targets of this process."""
        return {}

    def collector_env(self, ctx: StackContext) -> dict[str, str]:
        """Variables a Collector of the same stack needs to send here (a store's endpoint)."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
