"""``otel-tdd stack up | down | status | logs``: the stack as local processes.

The Collector (our build), Prometheus and Alertmanager (Debian's packages) run
from the same files that drive ``docker compose`` (``collector/config.yaml``,
``compose/prometheus``, ``compose/alertmanager``), rendered for loopback ports
into a state directory:

    <state dir>/               default ./.otel-tdd/stack, or $OTEL_TDD_STACK_DIR
      state.json               pids, command lines and ports of what `up` started
      logs/<component>.log     each component's stdout and stderr
      collector/config.yaml    the Collector config (ports come from OTELCOL_* env)
      collector/data/          traces.jsonl, logs.jsonl, metrics.jsonl
      prometheus/prometheus.yml, rules/, data/
      alertmanager/alertmanager.yml, secrets/, data/

With ``--gateways N`` the Collector tier is two-tier instead (docs/scaling.md):
an ``agent`` (``collector/agent.yaml``) that the app sends to, routing by trace
id to ``gateway-1`` .. ``gateway-N`` (``collector/gateway.yaml``), each with its
own ports and ``gateway-i/data/`` file output. The agent's gateway list is the
overlay ``agent/gateways.yaml``; :meth:`LocalStack.rebalance` rewrites it with
the gateways that still run and reloads the agent (SIGHUP), which is what the
``k8s`` resolver does from EndpointSlices in a cluster. ``up --gateways N``
also starts the ``resolver`` process, which does that every second
(``stack rebalance --watch 1``) so that a dead gateway leaves the agent's ring
without anyone typing a command; ``--resolver-interval 0`` leaves it out.

``down`` signals a pid only while it still runs the exact command line ``up``
recorded (which names files in this directory), so a stale ``state.json`` whose
pid now belongs to something else never kills it. The tests use the same code
through :class:`LocalStack`.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from otel_tdd.stack import process
from otel_tdd.stack.collector import (
    CollectorBuildError,
    collector_binary,
    collector_env,
    find_collector_dir,
    find_config,
)
from otel_tdd.stack.private_files import (
    UnsafePathError,
    copy_private,
    make_private_dir,
    open_private,
    read_private,
    write_private,
)

__all__ = [
    "AGENT",
    "AGENT_PORTS",
    "COMPONENTS",
    "DEFAULT_PORTS",
    "GATEWAY_PORTS",
    "RESOLVER",
    "ComponentStatus",
    "LocalStack",
    "Receivers",
    "StackConfig",
    "StackError",
    "cli",
    "find_compose_dir",
    "gateway_names",
    "render_alertmanager_config",
    "render_prometheus_config",
]

COMPONENTS: tuple[str, ...] = ("collector", "prometheus", "alertmanager")
# Prometheus last up and first down: it scrapes the Collector and alerts into
# Alertmanager, so neither is missing while it runs. In two-tier mode the gateways
# come up before the agent that sends to them, and go down after it has drained;
# the resolver comes up last and goes down first, so it never sees a stack that
# is only half there and drops gateways that are merely starting or stopping.
_START_ORDER = ("gateway", "collector", "agent", "alertmanager", "prometheus", "resolver")

# The Collector tier in two-tier mode: these processes stand for "collector".
AGENT = "agent"
# Two-tier mode's stand-in for the k8s resolver: `stack rebalance --watch` as a process.
RESOLVER = "resolver"
# The resolver's first log line; its readiness (it serves no HTTP).
_RESOLVER_READY = "watching the gateways"
_GATEWAY = "gateway"
MAX_GATEWAYS = 9

# The standard ports (the same as compose publishes); --free-ports picks others.
DEFAULT_PORTS: Mapping[str, Mapping[str, int]] = {
    "collector": {
        "otlp_grpc": 4317,
        "otlp_http": 4318,
        "prometheus_exporter": 8889,
        "telemetry": 8888,
        "health": 13133,
    },
    "prometheus": {"web": 9090},
    "alertmanager": {"web": 9093},
}
# Two-tier mode (--gateways N): the agent takes the single Collector's OTLP ports, so
# apps need no change; gateway-i adds 100 * (i - 1) to each of GATEWAY_PORTS.
AGENT_PORTS: Mapping[str, int] = {
    "otlp_grpc": 4317,
    "otlp_http": 4318,
    "telemetry": 8888,
    "health": 13133,
}
GATEWAY_PORTS: Mapping[str, int] = {
    "otlp_grpc": 4417,
    "otlp_http": 4418,
    "prometheus_exporter": 8889,
    "telemetry": 8898,
    "health": 13134,
}

ENV_DIR = "OTEL_TDD_STACK_DIR"
ENV_APP_TARGET = "OTEL_TDD_STACK_APP_TARGET"
ENV_SECRETS_DIR = "OTEL_TDD_STACK_SECRETS_DIR"
ENV_WEBHOOK_URL = "OTEL_TDD_STACK_WEBHOOK_URL"
ENV_SLACK_API_URL = "OTEL_TDD_STACK_SLACK_API_URL"
ENV_SMTP_SMARTHOST = "OTEL_TDD_STACK_SMTP_SMARTHOST"
ENV_PROMETHEUS_BIN = "OTEL_TDD_PROMETHEUS_BIN"
ENV_ALERTMANAGER_BIN = "OTEL_TDD_ALERTMANAGER_BIN"

# Our knobs for the stack, shown by `otel-tdd stack --help` and docs/local-stack.md.
STACK_KNOBS: Mapping[str, str] = {
    ENV_DIR: "state directory (default: ./.otel-tdd/stack)",
    ENV_APP_TARGET: "HOST:PORT of the app's ops /metrics for the `app` scrape job (default: none)",
    ENV_SECRETS_DIR: "directory with real Alertmanager secret files (default: placeholders)",
    ENV_WEBHOOK_URL: "URL for every webhook receiver (default: http://127.0.0.1:5001/alertmanager)",
    ENV_SLACK_API_URL: "Slack webhook URL for the slack receivers (default: a placeholder)",
    ENV_SMTP_SMARTHOST: "HOST:PORT of the SMTP relay; set means plain SMTP, no STARTTLS",
    ENV_PROMETHEUS_BIN: "the prometheus binary (default: `prometheus` on PATH)",
    ENV_ALERTMANAGER_BIN: "the Alertmanager binary (default: `prometheus-alertmanager`, "
    "`alertmanager` on PATH)",
    "OTELCOL_BIN": "the Collector binary (default: the `otel-tdd collector build` cache)",
}

STATE_VERSION = 2  # 2: start_ticks per process (ownership)
_SECRETS_PREFIX = "/etc/alertmanager/secrets/"
# Where compose's webhook receiver points (the Docker host); locally that is loopback.
_DOCKER_HOST = "host.docker.internal"
_PLACEHOLDER_SECRETS: Mapping[str, str] = {
    # .invalid never resolves (RFC 2606): a notification fails visibly in the log.
    "slack_webhook_url": "https://hooks.slack.invalid/otel-tdd-placeholder",
    "smtp_password": "otel-tdd-placeholder-not-a-password",
    "webhook_token": "otel-tdd-placeholder-token",
}
_INSTALL_HINTS: Mapping[str, str] = {
    "prometheus": f"apt-get install prometheus (Debian/Ubuntu), or set {ENV_PROMETHEUS_BIN}",
    "alertmanager": "apt-get install prometheus-alertmanager (Debian/Ubuntu), "
    f"or set {ENV_ALERTMANAGER_BIN}",
}
_BINARY_NAMES: Mapping[str, tuple[str, ...]] = {
    "prometheus": ("prometheus",),
    "alertmanager": ("prometheus-alertmanager", "alertmanager"),
}

Progress = Callable[[str], None]


class StackError(Exception):
    """The stack cannot do what was asked; the message names the component and what to do."""

    def __init__(self, message: str, component: str | None = None) -> None:
        self.component = component
        super().__init__(f"{component}: {message}" if component else message)


def _agent_not_running() -> StackError:
    return StackError("not running: start the stack with --gateways N", AGENT)


# --- process names: single node or agent + gateways ---------------------------------------


def gateway_names(count: int) -> list[str]:
    """``gateway-1`` .. ``gateway-<count>``: the gateway processes of a two-tier stack."""
    return [f"{_GATEWAY}-{i}" for i in range(1, count + 1)]


def _gateway_index(name: str) -> int | None:
    """``3`` for ``gateway-3``; None for anything else."""
    prefix, _, number = name.partition("-")
    if prefix != _GATEWAY or not number.isdigit() or int(number) < 1:
        return None
    return int(number)


def _is_collector_tier(name: str) -> bool:
    """True for the processes that run our Collector build."""
    return name in ("collector", AGENT) or _gateway_index(name) is not None


def _default_ports(name: str) -> Mapping[str, int]:
    """The standard ports of one process (``gateway-i`` shifted by ``100 * (i - 1)``)."""
    index = _gateway_index(name)
    if index is not None:
        return {port: number + 100 * (index - 1) for port, number in GATEWAY_PORTS.items()}
    if name == AGENT:
        return AGENT_PORTS
    return DEFAULT_PORTS.get(name, {})


def _start_rank(name: str) -> int:
    kind = _GATEWAY if _gateway_index(name) is not None else name
    return _START_ORDER.index(kind) if kind in _START_ORDER else len(_START_ORDER)


def _start_order(names: Sequence[str]) -> list[str]:
    return sorted(names, key=lambda name: (_start_rank(name), _gateway_index(name) or 0))


# --- configuration -------------------------------------------------------------------


@dataclass(frozen=True)
class Receivers:
    """Where Alertmanager's receivers send, locally (compose's values otherwise).

    ``webhook_url`` replaces the URL of every webhook receiver; ``slack_api_url``
    becomes the content of the ``slack_webhook_url`` secret file; ``smtp_smarthost``
    replaces the global relay and, unless ``smtp_require_tls`` says otherwise,
    turns STARTTLS off (a local sink speaks plain SMTP).
    """

    webhook_url: str | None = None
    slack_api_url: str | None = None
    smtp_smarthost: str | None = None
    smtp_require_tls: bool | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Receivers:
        env = os.environ if environ is None else environ
        return cls(
            webhook_url=env.get(ENV_WEBHOOK_URL) or None,
            slack_api_url=env.get(ENV_SLACK_API_URL) or None,
            smtp_smarthost=env.get(ENV_SMTP_SMARTHOST) or None,
        )


@dataclass(frozen=True)
class StackConfig:
    """Everything ``up`` needs to know; :meth:`from_env` fills it as the CLI does."""

    state_dir: Path
    components: tuple[str, ...] = COMPONENTS
    free_ports: bool = False
    # "component.port" -> number, e.g. {"prometheus.web": 19090}; beats defaults and free ports.
    ports: Mapping[str, int] = field(default_factory=dict)
    app_target: str | None = None
    receivers: Receivers = field(default_factory=Receivers)
    secrets_dir: Path | None = None
    collector_config: Path | None = None
    # Prometheus rule files to load instead of compose/prometheus/rules (e.g. a copy
    # with `for:` windows of seconds for an alerting test).
    rules_dir: Path | None = None
    # Rule files generated by `otel-tdd slo generate`, loaded beside the rules above.
    slo_rules_dir: Path | None = None
    start_timeout: float = 60.0
    stop_timeout: float = 15.0
    # 0: one Collector (collector/config.yaml). N > 0: an agent and N gateways.
    gateways: int = 0
    # Extra variables for every Collector process, e.g. {"OTELCOL_TAIL_DECISION_WAIT": "2s"}.
    collector_env: Mapping[str, str] = field(default_factory=dict)
    # Two-tier mode: seconds between the resolver's health checks of the gateways;
    # None leaves the resolver out (the agent keeps its gateway list until
    # `stack rebalance`, as the static resolver does).
    resolver_interval: float | None = 1.0

    def __post_init__(self) -> None:
        unknown = [c for c in self.components if c not in COMPONENTS]
        if unknown or not self.components:
            raise StackError(
                f"unknown component(s) {unknown or self.components!r}; "
                f"choose from {', '.join(COMPONENTS)}"
            )
        if not 0 <= self.gateways <= MAX_GATEWAYS:
            raise StackError(f"--gateways {self.gateways}: choose 0 to {MAX_GATEWAYS}")
        if self.gateways and "collector" not in self.components:
            raise StackError("--gateways needs the collector component (agent and gateways)")
        if self.resolver_interval is not None and not 0.2 <= self.resolver_interval <= 3600:
            raise StackError(
                f"--resolver-interval {self.resolver_interval:g}: choose 0.2 to 3600 seconds, "
                "or 0 to run no resolver"
            )
        for key, port in self.ports.items():
            component, _, name = key.partition(".")
            if component not in self.processes or name not in _default_ports(component):
                known = [f"{c}.{p}" for c in self.processes for p in _default_ports(c)]
                raise StackError(f"unknown port {key!r}; known: {', '.join(known)}")
            if not 0 < port < 65536:
                raise StackError(f"port {key}={port} is out of range")

    @property
    def processes(self) -> tuple[str, ...]:
        """The processes ``up`` runs, in start order: ``collector`` becomes the
        agent and its gateways when ``gateways`` is set."""
        names: list[str] = []
        for component in self.components:
            if component == "collector" and self.gateways:
                names += [AGENT, *gateway_names(self.gateways)]
                if self.resolver_interval is not None:
                    names.append(RESOLVER)
            else:
                names.append(component)
        return tuple(_start_order(names))

    @classmethod
    def from_env(
        cls,
        state_dir: Path | str | None = None,
        environ: Mapping[str, str] | None = None,
        **kw: Any,
    ) -> StackConfig:
        env = os.environ if environ is None else environ
        kw.setdefault("app_target", env.get(ENV_APP_TARGET) or None)
        kw.setdefault("receivers", Receivers.from_env(env))
        secrets = env.get(ENV_SECRETS_DIR)
        kw.setdefault("secrets_dir", Path(secrets) if secrets else None)
        return cls(state_dir=default_state_dir(state_dir, env), **kw)


def default_state_dir(
    state_dir: Path | str | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """``state_dir``, else ``$OTEL_TDD_STACK_DIR``, else ``./.otel-tdd/stack``; absolute."""
    env = os.environ if environ is None else environ
    chosen = state_dir or env.get(ENV_DIR) or Path(".otel-tdd") / "stack"
    return Path(chosen).expanduser().resolve()


def find_compose_dir() -> Path:
    """``compose/``: the checkout's top-level folder, else the wheel's copy."""
    package_dir = Path(__file__).resolve().parent.parent
    checkout = package_dir.parent
    candidates = [checkout / "compose", package_dir / "_assets" / "compose"]
    if not (checkout / "pyproject.toml").is_file():
        candidates.pop(0)
    for candidate in candidates:
        if (candidate / "prometheus" / "prometheus.yml").is_file():
            return candidate
    raise StackError(
        "cannot find the compose/ folder (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); reinstall otel-tdd or run from a checkout"
    )


# --- rendering the compose files for loopback ------------------------------------------


def _loopback(port: int) -> str:
    return f"{process.LOOPBACK}:{port}"


def render_prometheus_config(
    source: Mapping[str, Any],
    ports: Mapping[str, Mapping[str, int]],
    *,
    app_target: str | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """compose's prometheus.yml with each job's target moved to its local port.

    Jobs are found by ``job_name`` (an interface, see compose/prometheus/prometheus.yml).
    A job whose component does not run here (node-exporter, alertmanager without
    Alertmanager, app without ``app_target``) is dropped. In two-tier mode (``agent``
    and ``gateway-i`` in ``ports``) ``otel-collector`` scrapes every gateway's
    exporter and ``otel-collector-internal`` the agent's and every gateway's own
    metrics. Returns the config and the names of the dropped jobs.
    """
    config: dict[str, Any] = json.loads(json.dumps(source))  # deep copy, plain types
    targets: dict[str, list[str]] = {}
    collectors = [name for name in _start_order(list(ports)) if _is_collector_tier(name)]
    exporters = [
        _loopback(ports[name]["prometheus_exporter"])
        for name in collectors
        if "prometheus_exporter" in ports[name]
    ]
    if exporters:
        targets["otel-collector"] = exporters
    if collectors:
        targets["otel-collector-internal"] = [
            _loopback(ports[name]["telemetry"]) for name in collectors
        ]
    if "prometheus" in ports:
        targets["prometheus"] = [_loopback(ports["prometheus"]["web"])]
    if "alertmanager" in ports:
        targets["alertmanager"] = [_loopback(ports["alertmanager"]["web"])]
    if app_target:
        targets["app"] = [app_target]

    kept, dropped = [], []
    for job in config.get("scrape_configs") or []:
        job_targets = targets.get(job.get("job_name", ""))
        if job_targets is None:
            dropped.append(str(job.get("job_name")))
            continue
        job.pop("file_sd_configs", None)
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": job_targets}]
        kept.append(job)
    config["scrape_configs"] = kept

    if "alertmanager" in ports:
        config["alerting"] = {
            "alertmanagers": [
                {"static_configs": [{"targets": [_loopback(ports["alertmanager"]["web"])]}]}
            ]
        }
    else:
        config.pop("alerting", None)
    return config, dropped


def _walk_strings(node: Any, change: Callable[[str], str]) -> Any:
    if isinstance(node, dict):
        return {key: _walk_strings(value, change) for key, value in node.items()}
    if isinstance(node, list):
        return [_walk_strings(value, change) for value in node]
    if isinstance(node, str):
        return change(node)
    return node


def render_alertmanager_config(
    source: Mapping[str, Any], secrets_dir: Path, receivers: Receivers | None = None
) -> tuple[dict[str, Any], list[str]]:
    """compose's alertmanager.yml with secret paths moved into ``secrets_dir``.

    Returns the config and the secret file names it reads (``smtp_password``...).
    Webhook URLs aimed at the Docker host point at loopback instead, unless
    ``receivers`` gives the URLs outright.
    """
    receivers = receivers or Receivers()
    secret_names: list[str] = []

    def relocate(value: str) -> str:
        if value.startswith(_SECRETS_PREFIX):
            name = value[len(_SECRETS_PREFIX) :]
            secret_names.append(name)
            return str(secrets_dir / name)
        return value

    config: dict[str, Any] = _walk_strings(json.loads(json.dumps(source)), relocate)
    for receiver in config.get("receivers") or []:
        for webhook in receiver.get("webhook_configs") or []:
            if receivers.webhook_url:
                webhook["url"] = receivers.webhook_url
            elif "url" in webhook:
                webhook["url"] = str(webhook["url"]).replace(_DOCKER_HOST, process.LOOPBACK)
    if receivers.smtp_smarthost:
        global_section = config.setdefault("global", {})
        global_section["smtp_smarthost"] = receivers.smtp_smarthost
        global_section["smtp_require_tls"] = (
            False if receivers.smtp_require_tls is None else receivers.smtp_require_tls
        )
    elif receivers.smtp_require_tls is not None:
        config.setdefault("global", {})["smtp_require_tls"] = receivers.smtp_require_tls
    return config, sorted(set(secret_names))


class _Dumper(yaml.SafeDumper):
    """Keeps templates readable: multi-line strings as ``|`` blocks, no line folding."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _write_yaml(path: Path, data: Mapping[str, Any], source: Path) -> None:
    header = (
        f"# Rendered by `otel-tdd stack up` from {source}.\n"
        "# Edit the source, not this file: the next `up` rewrites it.\n"
    )
    text = yaml.dump(dict(data), Dumper=_Dumper, sort_keys=False, width=1_000_000)
    write_private(path, header + text)  # alertmanager.yml holds the webhook URL: 0600


def _copy_rules(source: Path, target: Path) -> None:
    """The rule files, fresh each `up`, as private files (a symlinked rules dir is refused)."""
    if os.path.islink(target):
        raise UnsafePathError(
            errno.ELOOP,
            f"{target} is a symlink; otel-tdd stack does not follow links in its "
            "state directory. Remove it and retry",
        )
    shutil.rmtree(target, ignore_errors=True)
    for path in sorted(source.rglob("*")):
        if path.is_file():
            copy_private(path, target / path.relative_to(source))
    make_private_dir(target)


def _write_secret(path: Path, value: str) -> None:
    write_private(path, value)  # a symlink planted there is refused, not followed


# --- state -------------------------------------------------------------------------------


@dataclass
class _Proc:
    pid: int
    argv: list[str]
    started_at: str
    # Against pid reuse (process.Owner): when the process started, from /proc/PID/stat.
    start_ticks: int | None = None


@dataclass
class _State:
    ports: dict[str, dict[str, int]] = field(default_factory=dict)
    processes: dict[str, _Proc] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "ports": self.ports,
            "processes": {name: asdict(proc) for name, proc in self.processes.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> _State:
        return cls(
            ports={c: {k: int(v) for k, v in p.items()} for c, p in data.get("ports", {}).items()},
            processes={
                name: _Proc(
                    int(p["pid"]),
                    [str(a) for a in p["argv"]],
                    str(p.get("started_at")),
                    None if p.get("start_ticks") is None else int(p["start_ticks"]),
                )
                for name, p in data.get("processes", {}).items()
            },
        )


@dataclass(frozen=True)
class ComponentStatus:
    """One row of ``stack status``."""

    name: str
    pid: int | None
    state: str  # "running", "stopped", or "stale" (pid file points at a process not ours)
    healthy: bool
    url: str | None
    log: Path


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _describe(pid: int) -> str:
    """Why a recorded pid is not one of ours any more, for a progress line."""
    cmdline = process.read_cmdline(pid)
    if cmdline is None:
        return f"not running (recorded pid {pid} is gone)"
    return f"stale pid file: pid {pid} now runs {' '.join(cmdline)[:80]!r}, not ours; left alone"


# --- the stack ------------------------------------------------------------------------------


class LocalStack:
    """Start, watch and stop the Collector, Prometheus and Alertmanager as local processes.

    ``LocalStack(tmp, free_ports=True)`` is what the tests use; as a context manager
    it is up inside the ``with`` and down after it, whatever happens.
    """

    def __init__(
        self,
        state_dir: Path | str | None = None,
        *,
        free_ports: bool = False,
        components: Sequence[str] = COMPONENTS,
        progress: Progress | None = None,
        config: StackConfig | None = None,
        **options: Any,
    ) -> None:
        if config is None:
            config = StackConfig(
                state_dir=default_state_dir(state_dir),
                components=tuple(components),
                free_ports=free_ports,
                **options,
            )
        self.config = config
        self._progress: Progress = progress or (lambda _line: None)
        self._state = self._load()

    # -- paths

    @property
    def state_dir(self) -> Path:
        return self.config.state_dir

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    def log_path(self, component: str) -> Path:
        return self.state_dir / "logs" / f"{component}.log"

    @property
    def file_dir(self) -> Path:
        """Where the (single-node) Collector's file exporter writes traces/logs/metrics.jsonl."""
        return self.state_dir / "collector" / "data"

    def gateway_file_dir(self, gateway: str) -> Path:
        """Where ``gateway-i`` writes its traces/logs/metrics.jsonl (two-tier mode)."""
        return self.state_dir / gateway / "data"

    def config_path(self, component: str) -> Path:
        if _is_collector_tier(component):
            return self.state_dir / component / "config.yaml"
        names = {"prometheus": "prometheus.yml"}
        return self.state_dir / component / names.get(component, f"{component}.yml")

    @property
    def agent_overlay_path(self) -> Path:
        """The agent's gateway list, merged over agent.yaml; :meth:`rebalance` rewrites it."""
        return self.state_dir / AGENT / "gateways.yaml"

    # -- endpoints (known once up, or from a state.json left by an earlier `up`)

    def _port(self, component: str, name: str) -> int:
        try:
            return self._state.ports[component][name]
        except KeyError:
            raise StackError(
                f"no {name} port known: the stack in {self.state_dir} is not up", component
            ) from None

    @property
    def _front(self) -> str:
        """The Collector the app sends to: the agent in two-tier mode."""
        if AGENT in self._state.ports or (self.config.gateways and not self._state.ports):
            return AGENT
        return "collector"

    @property
    def otlp_grpc_endpoint(self) -> str:
        return f"http://{_loopback(self._port(self._front, 'otlp_grpc'))}"

    @property
    def otlp_http_endpoint(self) -> str:
        return f"http://{_loopback(self._port(self._front, 'otlp_http'))}"

    @property
    def collector_metrics_url(self) -> str:
        """The Collector's prometheus exporter (app metrics, span metrics); single node."""
        return f"http://{_loopback(self._port('collector', 'prometheus_exporter'))}/metrics"

    @property
    def collector_telemetry_url(self) -> str:
        """The Collector's own metrics (otelcol_*): the agent's in two-tier mode."""
        return f"http://{_loopback(self._port(self._front, 'telemetry'))}/metrics"

    @property
    def collector_health_url(self) -> str:
        return f"http://{_loopback(self._port(self._front, 'health'))}/"

    @property
    def gateways(self) -> list[str]:
        """The gateway processes of a two-tier stack (``[]`` for a single node)."""
        known = [name for name in self._state.ports if _gateway_index(name) is not None]
        return _start_order(known) if known else gateway_names(self.config.gateways)

    def gateway_otlp_endpoint(self, gateway: str) -> str:
        """``127.0.0.1:PORT``: the OTLP/gRPC address the agent routes to."""
        return _loopback(self._port(gateway, "otlp_grpc"))

    def gateway_metrics_url(self, gateway: str) -> str:
        """A gateway's prometheus exporter: app metrics routed to it, its span metrics."""
        return f"http://{_loopback(self._port(gateway, 'prometheus_exporter'))}/metrics"

    def gateway_telemetry_url(self, gateway: str) -> str:
        return f"http://{_loopback(self._port(gateway, 'telemetry'))}/metrics"

    def gateway_health_url(self, gateway: str) -> str:
        return f"http://{_loopback(self._port(gateway, 'health'))}/"

    @property
    def prometheus_url(self) -> str:
        return f"http://{_loopback(self._port('prometheus', 'web'))}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://{_loopback(self._port('alertmanager', 'web'))}"

    @property
    def urls(self) -> dict[str, str]:
        """Every endpoint of the components that have ports, by name."""
        urls: dict[str, str] = {}
        if "collector" in self._state.ports or AGENT in self._state.ports:
            urls.update(otlp_grpc=self.otlp_grpc_endpoint, otlp_http=self.otlp_http_endpoint)
        if "collector" in self._state.ports:
            urls["collector_metrics"] = self.collector_metrics_url
        if "collector" in self._state.ports or AGENT in self._state.ports:
            urls.update(
                collector_telemetry=self.collector_telemetry_url,
                collector_health=self.collector_health_url,
            )
        for gateway in self.gateways if AGENT in self._state.ports else []:
            urls[f"{gateway}_otlp_grpc"] = f"http://{self.gateway_otlp_endpoint(gateway)}"
            urls[f"{gateway}_metrics"] = self.gateway_metrics_url(gateway)
        if "prometheus" in self._state.ports:
            urls["prometheus"] = self.prometheus_url
        if "alertmanager" in self._state.ports:
            urls["alertmanager"] = self.alertmanager_url
        return urls

    @property
    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self._state.processes.items()}

    def _is_ready(self, component: str) -> bool:
        """Whether a running component answers: its health URL, or the resolver's log line."""
        if component == RESOLVER:
            try:
                return _RESOLVER_READY in self.log_path(RESOLVER).read_text(errors="replace")
            except FileNotFoundError:
                return False
        return process.http_ok(self._ready_url(component))

    def _readiness(self, component: str) -> str:
        """What :meth:`_is_ready` waits on, for messages."""
        return "its log" if component == RESOLVER else self._ready_url(component)

    def _ready_url(self, component: str) -> str:
        if _gateway_index(component) is not None:
            return self.gateway_health_url(component)
        if _is_collector_tier(component):
            return self.collector_health_url
        base = self.prometheus_url if component == "prometheus" else self.alertmanager_url
        return f"{base}/-/ready"

    def _main_url(self, component: str) -> str:
        if component == RESOLVER:
            return f"checks the gateways every {self.config.resolver_interval or 1:g}s"
        if _gateway_index(component) is not None:
            return f"http://{self.gateway_otlp_endpoint(component)}"
        if _is_collector_tier(component):
            return self.otlp_http_endpoint
        return self.prometheus_url if component == "prometheus" else self.alertmanager_url

    # -- state file

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One `up`/`down` at a time per state dir (two shells, two test workers)."""
        make_private_dir(self.state_dir, self.state_dir)
        import fcntl

        # Never truncated, never followed: a .lock symlink is refused.
        fd = open_private(self.state_dir / ".lock", os.O_RDWR | os.O_CREAT, root=self.state_dir)
        with os.fdopen(fd, "r+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                self._state = self._load()
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

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

    def _owner(self, component: str, proc: _Proc) -> process.Owner:
        """The id of *this* state directory and *its* component directory as the working
        directory: a copy of state.json, or of the whole directory, has neither."""
        try:
            stack_id = read_private(self.state_dir / ".stack-id").strip()
        except FileNotFoundError:
            # No id, so nothing here was started by this version of `up`: a NUL can be in
            # no environment, so no process matches (and status does not create the file).
            stack_id = "\0"
        cwd = os.path.realpath(self.state_dir / component)
        return process.Owner(stack_id, proc.start_ticks, cwd)

    def _stop(self, component: str, proc: _Proc) -> process.StopResult:
        owner = self._owner(component, proc)
        return process.stop(proc.pid, proc.argv, timeout=self.config.stop_timeout, owner=owner)

    def _load(self) -> _State:
        try:
            data = json.loads(read_private(self.state_file))
            return _State.from_json(data)
        except FileNotFoundError:
            return _State()
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StackError(
                f"{self.state_file} is unreadable ({exc}); stop the processes it named "
                "yourself if any still run, then delete it"
            ) from exc

    @property
    def _last_ports_file(self) -> Path:
        return self.state_dir / "last-ports.json"

    def _forget_ports(self) -> None:
        """Drop the ports of what no longer runs, noting them in last-ports.json: the next
        ``up --free-ports`` here takes them again while they are free, so an app still
        exporting to the old Collector reconnects to the new one."""
        if self._state.ports:
            # Like state.json: 0600, and a link planted there is replaced, never written through.
            tmp = self._last_ports_file.with_suffix(".tmp")
            write_private(tmp, json.dumps(self._state.ports) + "\n", self.state_dir)
            os.replace(tmp, self._last_ports_file)
        self._state.ports = {}

    def _last_ports(self) -> dict[str, dict[str, int]]:
        try:
            data = json.loads(self._last_ports_file.read_text(encoding="utf-8"))
            return {c: {k: int(v) for k, v in p.items()} for c, p in data.items()}
        except (OSError, ValueError, AttributeError, TypeError):
            return {}  # none yet, or unreadable: pick free ports as before

    def _save(self) -> None:
        if not self._state.processes:
            self.state_file.unlink(missing_ok=True)
            return
        tmp = self.state_file.with_suffix(".tmp")
        write_private(tmp, json.dumps(self._state.to_json(), indent=2) + "\n", self.state_dir)
        os.replace(tmp, self.state_file)  # replaces a link itself, never its target

    def _is_ours(self, component: str) -> bool:
        proc = self._state.processes.get(component)
        return proc is not None and process.is_ours(
            proc.pid, proc.argv, self._owner(component, proc)
        )

    def is_running(self, component: str) -> bool:
        """Whether ``component`` runs now as ``up`` started it (re-reads state.json)."""
        self._state = self._load()
        return self._is_ours(component)

    # -- up

    def up(self) -> list[ComponentStatus]:
        """Start what is not running yet, wait until each is ready; idempotent."""
        started_at = time.monotonic()
        with self._locked():
            wanted = list(self.config.processes)
            self._stop_outdated_resolver()
            running = [c for c in wanted if self._is_ours(c)]
            for component in list(self._state.processes):
                if not self._is_ours(component):
                    stale = self._state.processes.pop(component)
                    then = "starting a new one" if component in wanted else "forgetting it"
                    self._progress(f"{component:<13} {_describe(stale.pid)}; {then}")
            if not any(self._is_ours(c) for c in self._state.processes):
                self._forget_ports()  # nothing of ours runs: ports are free to choose again
            self._save()
            to_start = [c for c in wanted if c not in running]
            for component in running:
                self._wait_ready_running(component)
            if not to_start:
                self._progress(f"stack already up in {self.state_dir}")
                self._save()
                return self.status()
            try:
                binaries = self._find_binaries(to_start)
                self._assign_ports(to_start)
                self._check_ports(to_start)
                self._start_and_wait(to_start, binaries)
            except BaseException:
                self._state = self._load()  # forget the ports of what did not start
                raise
            if AGENT in running and any(_gateway_index(c) is not None for c in to_start):
                self._route_agent_to_live_gateways()  # a restarted gateway has new ports
            self._progress(f"stack up in {time.monotonic() - started_at:.1f}s ({self.state_dir})")
        return self.status()

    def _stop_outdated_resolver(self) -> None:
        """`up --gateways N` with another --resolver-interval (0: none) than the one running."""
        if not self.config.gateways or not self._is_ours(RESOLVER):
            return
        proc = self._state.processes[RESOLVER]
        if RESOLVER in self.config.processes and proc.argv == self._resolver_argv(proc.argv[0]):
            return
        result = self._stop(RESOLVER, proc)
        del self._state.processes[RESOLVER]
        self._save()
        why = "its interval changed" if RESOLVER in self.config.processes else "not wanted"
        self._progress(f"{RESOLVER:<13} {result.value} (pid {proc.pid}): {why}")

    def _resolver_argv(self, python: str) -> list[str]:
        return [
            python,
            "-m",
            "otel_tdd.stack.local",
            "rebalance",
            f"--dir={self.state_dir.resolve()}",
            f"--watch={self.config.resolver_interval or 1:g}",
            f"--timeout={self.config.start_timeout:g}",
        ]

    def _wait_ready_running(self, component: str) -> None:
        proc = self._state.processes[component]
        if not process.wait_until(
            lambda: self._is_ready(component), timeout=self.config.start_timeout, interval=0.2
        ):
            raise StackError(
                f"running (pid {proc.pid}) but not ready at {self._readiness(component)}; see "
                f"`otel-tdd stack logs {component}`, or `otel-tdd stack down` and up again",
                component,
            )
        self._progress(f"{component:<13} already running (pid {proc.pid})")

    def _find_binaries(self, components: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        missing: list[str] = []
        for component in components:
            if component == RESOLVER:
                found[component] = sys.executable  # `python -m otel_tdd.stack.local`
                continue
            if _is_collector_tier(component):
                try:
                    found[component] = str(collector_binary())
                except CollectorBuildError as exc:
                    message = f"collector: {exc}"
                    if message not in missing:  # once for the agent and all gateways
                        missing.append(message)
                continue
            env_name = ENV_PROMETHEUS_BIN if component == "prometheus" else ENV_ALERTMANAGER_BIN
            override = os.environ.get(env_name)
            if override:
                path = shutil.which(override)
                if path is None:
                    missing.append(
                        f"{component}: {env_name}={override} is not an executable; "
                        f"install with: {_INSTALL_HINTS[component]}"
                    )
                else:
                    found[component] = path
                continue
            candidates = _BINARY_NAMES[component]
            path = next((p for p in map(shutil.which, candidates) if p), None)
            if path is None:
                names = " or ".join(f"`{n}`" for n in candidates)
                missing.append(
                    f"{component}: {names} not found on PATH; install with: "
                    f"{_INSTALL_HINTS[component]}"
                )
            else:
                found[component] = path
        if missing:
            raise StackError("cannot start the stack, missing binaries:\n  " + "\n  ".join(missing))
        return found

    def _assign_ports(self, components: Sequence[str]) -> None:
        needed = [(c, name) for c in components for name in _default_ports(c)]
        picked = iter(process.free_ports(2 * len(needed)) if self.config.free_ports else [])
        last_ports = self._last_ports() if self.config.free_ports else {}
        taken = {p for ports in self._state.ports.values() for p in ports.values()}
        for component, name in needed:
            last = last_ports.get(component, {}).get(name)
            override = self.config.ports.get(f"{component}.{name}")
            # A gateway restarted under a running agent keeps its address, as a
            # StatefulSet pod keeps its name: the agent's queued share for it is
            # then delivered by its retries instead of being dropped by a reload.
            previous = self._state.ports.get(component, {}).get(name)
            if override is not None:
                port = override
            elif previous and _gateway_index(component) and process.port_is_free(previous):
                port = previous
            elif last and last not in taken and process.port_is_free(last):
                port = last  # this state dir's port of its last run
            elif self.config.free_ports:
                port = next(p for p in picked if p not in taken)
            else:
                port = _default_ports(component)[name]
            self._state.ports.setdefault(component, {})[name] = port
            taken.add(port)

    def _check_ports(self, components: Sequence[str]) -> None:
        seen: dict[int, str] = {}
        for component in components:
            for name, port in self._state.ports.get(component, {}).items():
                label = f"{component} {name} port {port}"
                if port in seen:
                    raise StackError(f"{name} port {port} is also given to {seen[port]}", component)
                seen[port] = label
                if not process.port_is_free(port):
                    raise StackError(
                        f"{name} port {_loopback(port)} is in use by another process; "
                        "free it, run `otel-tdd stack down` if it is an earlier stack, "
                        "or use --free-ports / --port "
                        f"{component}.{name}=N",
                        component,
                    )

    def _prepare(self, component: str, binary: str) -> tuple[list[str], dict[str, str] | None]:
        """Render the component's files; return its argv and environment."""
        if component == RESOLVER:
            make_private_dir(self.state_dir / RESOLVER, self.state_dir)
            # It runs in its own directory: make sure it imports the otel_tdd this is.
            package_root = str(Path(__file__).resolve().parents[2])
            path = os.environ.get("PYTHONPATH")
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, path]))}
            return self._resolver_argv(binary), env
        ports = self._state.ports[component]
        home = self.state_dir / component
        make_private_dir(home / "data", self.state_dir)
        config_path = self.config_path(component)
        if _is_collector_tier(component):
            return self._prepare_collector(component, binary, config_path)
        compose = find_compose_dir()
        if component == "prometheus":
            source = compose / "prometheus" / "prometheus.yml"
            rendered, dropped = render_prometheus_config(
                yaml.safe_load(source.read_text(encoding="utf-8")),
                {c: p for c, p in self._state.ports.items() if c in self.config.processes},
                app_target=self.config.app_target,
            )
            _write_yaml(config_path, rendered, source)
            rules = home / "rules"
            _copy_rules(self.config.rules_dir or compose / "prometheus" / "rules", rules)
            self._add_slo_rules(rules)
            if dropped:
                self._progress(
                    f"{'prometheus':<13} scrape jobs not run locally: {', '.join(dropped)}"
                )
            return [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={home / 'data'}",
                "--storage.tsdb.retention.time=31d",  # as compose: SLO budgets span 30 days
                f"--web.listen-address={_loopback(ports['web'])}",
                "--web.enable-lifecycle",
            ], None
        source = compose / "alertmanager" / "alertmanager.yml"
        secrets_dir = self.config.secrets_dir or home / "secrets"
        rendered, secret_names = render_alertmanager_config(
            yaml.safe_load(source.read_text(encoding="utf-8")), secrets_dir, self.config.receivers
        )
        self._write_secrets(secrets_dir, secret_names)
        _write_yaml(config_path, rendered, source)
        return [
            binary,
            f"--config.file={config_path}",
            f"--storage.path={home / 'data'}",
            f"--web.listen-address={_loopback(ports['web'])}",
            "--cluster.listen-address=",
        ], None

    def _add_slo_rules(self, rules: Path) -> None:
        """Copy the generated SLO rule files (``slo-*.yml``) next to the shipped ones."""
        source = self.config.slo_rules_dir
        if source is None:
            return
        files = sorted(source.glob("slo-*.yml"))
        if not files:
            raise StackError(
                f"no slo-*.yml rule files in {source}: run `otel-tdd slo generate` first",
                "prometheus",
            )
        for path in files:
            copy_private(path, rules / path.name)
        self._progress(f"{'prometheus':<13} SLO rules: {', '.join(p.name for p in files)}")

    def _prepare_collector(
        self, component: str, binary: str, config_path: Path
    ) -> tuple[list[str], dict[str, str]]:
        """The single Collector, the agent or a gateway: its config file, argv and env."""
        ports = self._state.ports[component]
        env_vars = {
            "OTELCOL_OTLP_GRPC_ENDPOINT": _loopback(ports["otlp_grpc"]),
            "OTELCOL_OTLP_HTTP_ENDPOINT": _loopback(ports["otlp_http"]),
            "OTELCOL_HEALTH_ENDPOINT": _loopback(ports["health"]),
            "OTELCOL_TELEMETRY_HOST": process.LOOPBACK,
            "OTELCOL_TELEMETRY_PORT": str(ports["telemetry"]),
        }
        if "prometheus_exporter" in ports:
            env_vars["OTELCOL_PROMETHEUS_ENDPOINT"] = _loopback(ports["prometheus_exporter"])
        argv = [binary, f"--config={config_path}"]
        if component == "collector":
            source = self.config.collector_config or find_config()
            env_vars["OTELCOL_FILE_DIR"] = str(self.file_dir)
        elif component == AGENT:
            source = find_collector_dir() / "agent.yaml"
            endpoints = [self.gateway_otlp_endpoint(g) for g in self.gateways]
            env_vars["OTELCOL_GATEWAY_ENDPOINTS"] = json.dumps(endpoints)
            self._write_agent_overlay(endpoints)
            argv.append(f"--config={self.agent_overlay_path}")
        else:
            source = find_collector_dir() / "gateway.yaml"
            env_vars["OTELCOL_FILE_DIR"] = str(self.gateway_file_dir(component))
            env_vars["OTELCOL_GATEWAY_NAME"] = component
        copy_private(source, config_path, self.state_dir)
        env_vars = {**self.config.collector_env, **env_vars}  # the stack's ports win
        write_private(
            config_path.parent / "env", "".join(f"{k}={v}\n" for k, v in env_vars.items())
        )
        return argv, collector_env(env_vars)

    # -- the agent's gateway list (two-tier mode)

    def _write_agent_overlay(self, endpoints: Sequence[str]) -> None:
        """agent/gateways.yaml: the static resolver's list for both load_balancing exporters."""
        overlay = {
            "exporters": {
                name: {"resolver": {"static": {"hostnames": list(endpoints)}}}
                for name in ("load_balancing", "load_balancing/metrics")
            }
        }
        _write_yaml(self.agent_overlay_path, overlay, find_collector_dir() / "agent.yaml")

    def agent_gateways(self) -> list[str]:
        """The gateway endpoints the agent routes to now (its overlay's list)."""
        try:
            overlay = yaml.safe_load(self.agent_overlay_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        static = overlay["exporters"]["load_balancing"]["resolver"]["static"]
        return [str(host) for host in static["hostnames"]]

    def rebalance(self) -> list[str]:
        """Route the agent to the gateways that are running and ready; return their endpoints.

        The local stand-in for a resolver that follows the gateways' health (the
        ``k8s`` resolver in deploy/k8s): the static list is rewritten and the agent
        reloaded with SIGHUP when it changed. A gateway that is down is skipped;
        one that is only slow to answer its health check stays. Idempotent.
        """
        with self._locked():
            return self._route_agent_to_live_gateways()

    def _route_agent_to_live_gateways(self) -> list[str]:
        if not self._is_ours(AGENT):
            raise _agent_not_running()
        # A gateway whose health check times out is busy, not gone: dropping it from
        # the ring would drop what the agent queued for it, and a loaded gateway
        # flapping in and out would lose more than it sheds.
        live = [
            self.gateway_otlp_endpoint(g)
            for g in self.gateways
            if self._is_ours(g) and process.http_probe(self.gateway_health_url(g)) is not False
        ]
        if not live:
            raise StackError("no gateway is running; `otel-tdd stack up` restarts them", AGENT)
        before = self.agent_gateways()
        if live == before:
            return live
        self._write_agent_overlay(live)
        try:
            self._reload(AGENT)
        except BaseException:
            # Put the old list back so that the next round sees a change and signals
            # again; the list on disk must never claim a reload that did not happen.
            self._write_agent_overlay(before)
            raise
        self._progress(f"{AGENT:<13} now routes to {', '.join(live)}")
        return live

    def _reload(self, component: str) -> None:
        """SIGHUP: the Collector re-reads its config files; wait until it runs again."""
        proc = self._state.processes[component]
        log = self.log_path(component)
        ready_line = "Everything is ready"

        def readies() -> int:
            return log.read_text(encoding="utf-8", errors="replace").count(ready_line)

        before = readies()
        if not process.is_ours(proc.pid, proc.argv, self._owner(component, proc)):
            raise StackError(f"pid {proc.pid} is not ours any more; not signalled", component)
        os.kill(proc.pid, signal.SIGHUP)
        if not process.wait_until(
            lambda: readies() > before and process.http_ok(self._ready_url(component)),
            timeout=self.config.start_timeout,
            alive=lambda: process.is_running(proc.pid),
        ):
            raise StackError(
                f"did not come back after reloading its config; last lines of {log}:\n"
                + process.tail(log, 20).rstrip(),
                component,
            )

    def _write_secrets(self, secrets_dir: Path, names: Sequence[str]) -> None:
        if self.config.secrets_dir is not None:  # the user's own files: read, never written
            missing = [n for n in names if not (secrets_dir / n).is_file()]
            if missing:
                raise StackError(
                    f"secrets dir {secrets_dir} lacks {', '.join(missing)} "
                    "(one file per secret alertmanager.yml reads)",
                    "alertmanager",
                )
            return
        for name in names:
            value = _PLACEHOLDER_SECRETS.get(name, f"otel-tdd-placeholder-{name}")
            if name == "slack_webhook_url" and self.config.receivers.slack_api_url:
                value = self.config.receivers.slack_api_url
            _write_secret(secrets_dir / name, value)

    def _start_and_wait(self, components: Sequence[str], binaries: Mapping[str, str]) -> None:
        started: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for component in components:
                argv, env = self._prepare(component, binaries[component])
                cwd = self.state_dir / component
                proc = process.start(
                    argv,
                    log_path=self.log_path(component),
                    env=env,
                    cwd=cwd,
                    stack_id=self.stack_id,
                    root=self.state_dir,
                )
                started[component] = proc
                self._state.processes[component] = _Proc(
                    proc.pid, argv, _now(), process.start_ticks(proc.pid)
                )
                self._save()  # before waiting: a crash of this command must not orphan it
            t0 = time.monotonic()
            for component, proc in started.items():
                self._await_ready(component, proc)
                self._progress(
                    f"{component:<13} ready in {time.monotonic() - t0:.1f}s "
                    f"(pid {proc.pid}) {self._main_url(component)}"
                )
        except BaseException:
            for component in reversed(list(started)):
                self._stop(component, self._state.processes.pop(component))
            self._save()
            raise
        self._save()

    def _await_ready(self, component: str, proc: subprocess.Popen[bytes]) -> None:
        url = self._readiness(component)
        if not process.wait_until(
            lambda: self._is_ready(component),
            timeout=self.config.start_timeout,
            alive=lambda: proc.poll() is None,
        ):
            raise StackError(self._start_failure(component, proc, url), component)

    def _start_failure(self, component: str, proc: subprocess.Popen[bytes], url: str) -> str:
        log = self.log_path(component)
        code = proc.poll()
        what = (
            f"exited with code {code} while starting"
            if code is not None
            else f"not ready at {url} after {self.config.start_timeout:.0f}s"
        )
        time.sleep(0.1)  # let the last log line land
        return f"{what}; last lines of {log}:\n{process.tail(log, 20).rstrip()}"

    # -- down

    def down(self) -> list[tuple[str, process.StopResult, int]]:
        """Stop what ``up`` started, by pid, newest first; never a process that is not ours."""
        results: list[tuple[str, process.StopResult, int]] = []
        with self._locked():
            order = list(reversed(_start_order(list(self._state.processes))))
            for component in order:
                proc = self._state.processes[component]
                result = self._stop(component, proc)
                results.append((component, result, proc.pid))
                if result is process.StopResult.NOT_OURS:
                    message = _describe(proc.pid)
                else:
                    message = f"{result.value} (pid {proc.pid})"
                self._progress(f"{component:<13} {message}")
                del self._state.processes[component]
                self._save()
            if not order:
                self._progress(f"nothing to stop in {self.state_dir}")
            self._forget_ports()
            self._save()
        return results

    # -- status

    def status(self) -> list[ComponentStatus]:
        """Each component's pid, whether it is ours and running, and whether it is ready."""
        if not self.state_file.exists():
            self._state = _State()
        else:
            self._state = self._load()
        rows = []
        # What this state dir runs (a collector-only stack lists only the collector).
        names = _start_order(list(self._state.processes)) or list(self.config.processes)
        for component in names:
            proc = self._state.processes.get(component)
            url = self._main_url(component) if component in self._state.ports else None
            if proc is None:
                rows.append(
                    ComponentStatus(
                        component, None, "stopped", False, url, self.log_path(component)
                    )
                )
                continue
            if self._is_ours(component):
                healthy = self._is_ready(component)
                state = "running"
            else:
                healthy = False
                state = "stale" if process.is_running(proc.pid) else "stopped"
            rows.append(
                ComponentStatus(component, proc.pid, state, healthy, url, self.log_path(component))
            )
        return rows

    # -- Prometheus

    def query(self, promql: str, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Run an instant query on the stack's Prometheus; return its result list.

        Each item is ``{"metric": {labels}, "value": [ts, "string number"]}`` for a
        vector. A query Prometheus rejects raises StackError with its error.
        """
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            raise StackError(
                f"query {promql!r} failed: {body.get('errorType')}: {body.get('error')}",
                "prometheus",
            )
        result = body["data"]["result"]
        if body["data"].get("resultType") in ("scalar", "string"):
            return [{"metric": {}, "value": result}]
        return list(result)

    # -- context manager

    def __enter__(self) -> LocalStack:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()

    def __repr__(self) -> str:
        return f"LocalStack({str(self.state_dir)!r}, components={self.config.components!r})"


# --- command line ---------------------------------------------------------------------------


def _say(line: str) -> None:
    print(line, flush=True)


def _epilog() -> str:
    lines = ["environment:"]
    lines += [f"  {name:<32} {help_text}" for name, help_text in STACK_KNOBS.items()]
    return "\n".join(lines)


def _parse_port(text: str) -> tuple[str, int]:
    key, sep, value = text.partition("=")
    if not sep or not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected COMPONENT.NAME=PORT, got {text!r}")
    return key, int(value)


def _component_name(text: str) -> str:
    if text in COMPONENTS or text in (AGENT, RESOLVER) or _gateway_index(text) is not None:
        return text
    raise argparse.ArgumentTypeError(
        f"unknown component {text!r}; choose from {', '.join(COMPONENTS)}, "
        f"{AGENT}, {_GATEWAY}-N, {RESOLVER}"
    )


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir", type=Path, help=f"state directory (default: ${ENV_DIR} or ./.otel-tdd/stack)"
    )
    parser = argparse.ArgumentParser(
        prog="otel-tdd stack",
        description="Run the Collector, Prometheus and Alertmanager as local processes, "
        "from collector/ and compose/, on 127.0.0.1.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", parents=[common], help="start the stack and wait until it is ready")
    up.add_argument("--free-ports", action="store_true", help="pick free ports, not the standard")
    up.add_argument(
        "--components",
        default=",".join(COMPONENTS),
        help=f"comma-separated subset of {','.join(COMPONENTS)} (default: all)",
    )
    up.add_argument(
        "--port",
        action="append",
        type=_parse_port,
        default=[],
        metavar="COMPONENT.NAME=PORT",
        help="set one port, e.g. prometheus.web=19090 or collector.otlp_http=14318 (repeatable)",
    )
    up.add_argument("--app-target", help=f"HOST:PORT the `app` job scrapes (${ENV_APP_TARGET})")
    up.add_argument(
        "--secrets-dir", type=Path, help=f"Alertmanager secret files (${ENV_SECRETS_DIR})"
    )
    up.add_argument("--collector-config", type=Path, help="default: collector/config.yaml")
    up.add_argument(
        "--gateways",
        type=int,
        default=0,
        metavar="N",
        help="two-tier Collector: an agent (collector/agent.yaml) routing by trace id to N "
        "gateways (collector/gateway.yaml) instead of the single node (docs/scaling.md)",
    )
    up.add_argument(
        "--resolver-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="two-tier mode: how often the resolver process checks the gateways and routes "
        "the agent to those that answer (default 1; 0: no resolver, use `stack rebalance`)",
    )
    up.add_argument(
        "--rules-dir", type=Path, help="Prometheus rule files (default: compose/prometheus/rules)"
    )
    up.add_argument(
        "--slo-rules",
        type=Path,
        help=f"rules from `otel-tdd slo generate` (default: {SLO_RULES_DEFAULT} if it exists)",
    )
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait per component")
    sub.add_parser("down", parents=[common], help="stop what `up` started")
    status = sub.add_parser("status", parents=[common], help="pid, health and URL per component")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    rebalance = sub.add_parser(
        "rebalance",
        parents=[common],
        help="two-tier mode: route the agent to the gateways that still run (reloads it)",
    )
    rebalance.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the agent to come back after a reload (default 60)",
    )
    rebalance.add_argument(
        "--watch",
        type=float,
        metavar="SECONDS",
        help="keep checking every SECONDS until Ctrl-C or the agent stops (what the "
        "resolver process of `up --gateways N` runs; a local stand-in for the k8s resolver)",
    )
    logs = sub.add_parser("logs", parents=[common], help="show a component's log")
    logs.add_argument(
        "component",
        type=_component_name,
        help=f"{', '.join(COMPONENTS)}, or in two-tier mode {AGENT}, "
        f"{_GATEWAY}-1 .. {_GATEWAY}-N, {RESOLVER}",
    )
    logs.add_argument("-n", "--lines", type=int, default=50, help="last N lines (default 50)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    return parser


def _print_urls(stack: LocalStack) -> None:
    urls = stack.urls
    labels = {
        "otlp_grpc": "OTLP gRPC",
        "otlp_http": "OTLP HTTP",
        "collector_metrics": "Collector /metrics (app + span metrics)",
        "collector_telemetry": "Collector self-metrics",
        "collector_health": "Collector health",
        "prometheus": "Prometheus",
        "alertmanager": "Alertmanager",
    }
    for key, url in urls.items():
        gateway, _, kind = key.rpartition("_")
        if key not in labels and gateway.startswith(_GATEWAY):  # gateway-2_metrics...
            gateway, _, kind = key.partition("_")
            label = f"{gateway} " + (
                "OTLP gRPC (from the agent)"
                if kind == "otlp_grpc"
                else "/metrics (app + span metrics)"
            )
        else:
            label = labels.get(key, key)
        _say(f"  {label:<40} {url}")
    if "otlp_http" in urls:
        _say(f"send telemetry with: export OTEL_EXPORTER_OTLP_ENDPOINT={urls['otlp_http']}")


SLO_RULES_DEFAULT = Path(".otel-tdd") / "slo" / "rules"  # `otel-tdd slo generate`'s output


def _slo_rules(given: Path | None) -> Path | None:
    if given is not None:
        return given.resolve()
    return SLO_RULES_DEFAULT.resolve() if SLO_RULES_DEFAULT.is_dir() else None


def _cmd_up(args: argparse.Namespace) -> int:
    config = StackConfig.from_env(
        args.dir,
        components=tuple(c.strip() for c in args.components.split(",") if c.strip()),
        free_ports=args.free_ports,
        ports=dict(args.port),
        collector_config=args.collector_config.resolve() if args.collector_config else None,
        rules_dir=args.rules_dir.resolve() if args.rules_dir else None,
        slo_rules_dir=_slo_rules(args.slo_rules),
        start_timeout=args.timeout,
        gateways=args.gateways,
        resolver_interval=args.resolver_interval or None,
        **({"app_target": args.app_target} if args.app_target else {}),
        **({"secrets_dir": args.secrets_dir.resolve()} if args.secrets_dir else {}),
    )
    stack = LocalStack(config=config, progress=_say)
    stack.up()
    _print_urls(stack)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    stack = LocalStack(args.dir)
    rows = stack.status()
    if args.json:
        print(json.dumps([{**asdict(r), "log": str(r.log)} for r in rows], indent=2))
    else:
        print(f"{'COMPONENT':<13} {'PID':>7}  {'STATE':<8} {'HEALTH':<9} URL")
        for row in rows:
            health = "ready" if row.healthy else ("-" if row.state != "running" else "unready")
            print(
                f"{row.name:<13} {row.pid or '-':>7}  {row.state:<8} {health:<9} {row.url or '-'}"
            )
        print(f"state: {stack.state_dir}")
    return 0 if rows and all(r.state == "running" and r.healthy for r in rows) else 1


def _cmd_rebalance(args: argparse.Namespace) -> int:
    config = StackConfig(state_dir=default_state_dir(args.dir), start_timeout=args.timeout)
    stack = LocalStack(config=config, progress=_say)
    if args.watch is None:
        routes = stack.rebalance()
        _say(f"{AGENT:<13} routes to {', '.join(routes)}")
        return 0
    try:
        return _watch_gateways(stack, max(args.watch, 0.2))
    except KeyboardInterrupt:
        return 0


def _watch_gateways(stack: LocalStack, interval: float) -> int:
    """Rebalance every ``interval`` seconds until the agent stops; 0 then.

    A failed round (no gateway answers, the agent slow to reload, a file that
    does not parse) is reported once and retried: a resolver that died on the
    first hiccup would leave the agent routing to a dead gateway, which is what
    it is there to prevent. A stack whose agent is not running is an error at
    the start, and the end of the watch later.
    """
    if not stack.is_running(AGENT):
        raise _agent_not_running()
    _say(f"{RESOLVER:<13} {_RESOLVER_READY} every {interval:g}s for {stack.state_dir}")
    reported = ""
    while True:
        problem = ""
        try:
            stack.rebalance()
        except Exception as exc:  # a supervisor loop: any failed round is reported, then retried
            if not stack.is_running(AGENT):
                _say(f"{RESOLVER:<13} {AGENT} is not running any more; stopping")
                return 0
            problem = str(exc) if isinstance(exc, StackError) else repr(exc)
        if problem and problem != reported:
            _say(f"{RESOLVER:<13} {problem}; trying again every {interval:g}s")
        reported = problem
        time.sleep(interval)


def _cmd_logs(args: argparse.Namespace) -> int:
    log = LocalStack(args.dir).log_path(args.component)
    if not log.exists():
        print(f"otel-tdd stack: no log for {args.component} yet ({log})", file=sys.stderr)
        return 1
    sys.stdout.write(process.tail(log, args.lines))
    sys.stdout.flush()
    if not args.follow:
        return 0
    with log.open(encoding="utf-8", errors="replace") as fh:
        fh.seek(0, os.SEEK_END)
        try:
            while True:
                line = fh.readline()
                if line:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                else:
                    time.sleep(0.25)
        except KeyboardInterrupt:
            return 0


def cli(argv: list[str]) -> int:
    """``otel-tdd stack up | down | status | logs``."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "up":
            return _cmd_up(args)
        if args.command == "down":
            LocalStack(args.dir, progress=_say).down()
            return 0
        if args.command == "status":
            return _cmd_status(args)
        if args.command == "rebalance":
            return _cmd_rebalance(args)
        return _cmd_logs(args)
    except (StackError, UnsafePathError) as exc:
        print(f"otel-tdd stack: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli(sys.argv[1:]))
