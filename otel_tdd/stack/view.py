"""``StackView``: what a state directory's stack runs and where it answers, read from state.json.

The read side of :class:`~otel_tdd.stack.local.LocalStack`: endpoints, URLs,
status and Prometheus queries, for a stack this process started or an earlier
``otel-tdd stack up`` did.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otel_tdd.stack import process
from otel_tdd.stack.collectors import AGENT, Agent, file_dir, gateway_index, gateway_names
from otel_tdd.stack.component import Progress, StackContext, StackError, Url
from otel_tdd.stack.config import StackConfig, default_state_dir
from otel_tdd.stack.registry import COMPONENTS, component_for, listing_order, members, start_order
from otel_tdd.stack.state import State, StateStore

__all__ = ["ComponentStatus", "StackView"]


@dataclass(frozen=True)
class ComponentStatus:
    """One row of ``stack status``."""

    name: str
    pid: int | None
    state: str  # "running", "stopped", or "stale" (pid file points at a process not ours)
    healthy: bool
    url: str | None
    log: Path


class StackView:
    """A state directory's stack as ``up`` recorded it: paths, endpoints, status."""

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
        self._store = StateStore(config.state_dir)
        self._state = self._store.load()

    # -- paths

    @property
    def state_dir(self) -> Path:
        return self.config.state_dir

    @property
    def state_file(self) -> Path:
        return self._store.state_file

    def log_path(self, component: str) -> Path:
        return self._context().log_path(component)

    @property
    def file_dir(self) -> Path:
        """Where the (single-node) Collector's file exporter writes traces/logs/metrics.jsonl."""
        return file_dir(self.state_dir, "collector")

    def gateway_file_dir(self, gateway: str) -> Path:
        """Where ``gateway-i`` writes its traces/logs/metrics.jsonl (two-tier mode)."""
        return file_dir(self.state_dir, gateway)

    def config_path(self, component: str) -> Path:
        return component_for(component).config_path(self.state_dir)

    @property
    def agent_overlay_path(self) -> Path:
        """The agent's gateway list, merged over agent.yaml; :meth:`rebalance` rewrites it."""
        return Agent.overlay_path(self.state_dir)

    @property
    def stack_id(self) -> str:
        """This state directory's random id (see :attr:`StateStore.stack_id`)."""
        return self._store.stack_id

    # -- endpoints (known once up, or from a state.json left by an earlier `up`)

    def _context(self, names: Sequence[str] | None = None) -> StackContext:
        """What the components see: every port, and ``names`` (default: all with ports)."""
        ports = self._state.ports
        chosen = [n for n in (list(ports) if names is None else names) if n in ports]
        return StackContext(self.state_dir, self.config, ports, members(chosen), self._progress)

    def _url(self, component: str, port: str, path: str = "") -> str:
        return self._context().url(component, port, path)

    @property
    def _front(self) -> str:
        """The Collector the app sends to: the agent in two-tier mode."""
        if AGENT in self._state.ports or (self.config.gateways and not self._state.ports):
            return AGENT
        return "collector"

    @property
    def otlp_grpc_endpoint(self) -> str:
        return self._url(self._front, "otlp_grpc")

    @property
    def otlp_http_endpoint(self) -> str:
        return self._url(self._front, "otlp_http")

    @property
    def collector_metrics_url(self) -> str:
        """The Collector's prometheus exporter (app metrics, span metrics); single node."""
        return self._url("collector", "prometheus_exporter", "/metrics")

    @property
    def collector_telemetry_url(self) -> str:
        """The Collector's own metrics (otelcol_*): the agent's in two-tier mode."""
        return self._url(self._front, "telemetry", "/metrics")

    @property
    def collector_health_url(self) -> str:
        return self._url(self._front, "health", "/")

    @property
    def gateways(self) -> list[str]:
        """The gateway processes of a two-tier stack (``[]`` for a single node)."""
        known = [name for name in self._state.ports if gateway_index(name) is not None]
        return start_order(known) if known else gateway_names(self.config.gateways)

    def gateway_otlp_endpoint(self, gateway: str) -> str:
        """``127.0.0.1:PORT``: the OTLP/gRPC address the agent routes to."""
        return self._context().address(gateway, "otlp_grpc")

    def gateway_metrics_url(self, gateway: str) -> str:
        """A gateway's prometheus exporter: app metrics routed to it, its span metrics."""
        return self._url(gateway, "prometheus_exporter", "/metrics")

    def gateway_telemetry_url(self, gateway: str) -> str:
        return self._url(gateway, "telemetry", "/metrics")

    def gateway_health_url(self, gateway: str) -> str:
        return self._url(gateway, "health", "/")

    @property
    def prometheus_url(self) -> str:
        return self._url("prometheus", "web")

    @property
    def alertmanager_url(self) -> str:
        return self._url("alertmanager", "web")

    def labelled_urls(self) -> list[Url]:
        """Every endpoint of the components that have ports, with a label for people."""
        ctx = self._context()
        return [url for c in listing_order(self._state.ports) for url in c.urls(ctx)]

    @property
    def urls(self) -> dict[str, str]:
        """Every endpoint of the components that have ports, by name."""
        return {url.key: url.url for url in self.labelled_urls()}

    @property
    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self._state.processes.items()}

    def _is_ready(self, component: str) -> bool:
        return component_for(component).is_ready(self._context())

    # -- ownership

    def _is_ours(self, component: str) -> bool:
        proc = self._state.processes.get(component)
        return proc is not None and process.is_ours(
            proc.pid, proc.argv, self._store.owner(component, proc)
        )

    def is_running(self, component: str) -> bool:
        """Whether ``component`` runs now as ``up`` started it (re-reads state.json)."""
        self._state = self._store.load()
        return self._is_ours(component)

    # -- status

    def status(self) -> list[ComponentStatus]:
        """Each component's pid, whether it is ours and running, and whether it is ready."""
        self._state = self._store.load() if self.state_file.exists() else State()
        ctx = self._context()
        rows = []
        # What this state dir runs (a collector-only stack lists only the collector).
        names = start_order(self._state.processes) or list(self.config.processes)
        for name in names:
            component = component_for(name)
            proc = self._state.processes.get(name)
            url = component.main_url(ctx) if name in self._state.ports else None
            log = self.log_path(name)
            if proc is None:
                rows.append(ComponentStatus(name, None, "stopped", False, url, log))
                continue
            if self._is_ours(name):
                healthy, state = component.is_ready(ctx), "running"
            else:
                healthy = False
                state = "stale" if process.is_running(proc.pid) else "stopped"
            rows.append(ComponentStatus(name, proc.pid, state, healthy, url, log))
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
