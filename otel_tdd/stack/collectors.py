"""Our Collector build as stack components: the single node, or an agent and its gateways.

With ``--gateways N`` the Collector tier is two-tier (docs/scaling.md): an agent
(``collector/agent.yaml``) that the app sends to, routing by trace id to
``gateway-1`` .. ``gateway-N`` (``collector/gateway.yaml``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import yaml

from otel_tdd.stack import process
from otel_tdd.stack.assets import find_assets
from otel_tdd.stack.collector import CollectorBuildError, collector_binary, collector_env
from otel_tdd.stack.component import (
    Component,
    Launch,
    Progress,
    StackContext,
    StackError,
    StackOptions,
    Url,
)
from otel_tdd.stack.private_files import copy_private, make_private_dir, write_private
from otel_tdd.stack.render import write_yaml

__all__ = [
    "AGENT",
    "AGENT_PORTS",
    "COLLECTOR_PORTS",
    "GATEWAY_PORTS",
    "MAX_GATEWAYS",
    "RESOLVER",
    "Agent",
    "Collector",
    "Gateway",
    "gateway_names",
]

AGENT = "agent"
RESOLVER = "resolver"
MAX_GATEWAYS = 9
# The overlays with the JSONL file exporters (traces/logs/metrics.jsonl), off by default.
FILES_OVERLAY = "files.yaml"
GATEWAY_FILES_OVERLAY = "gateway-files.yaml"

COLLECTOR_PORTS: Mapping[str, int] = {
    "otlp_grpc": 4317,
    "otlp_http": 4318,
    "prometheus_exporter": 8889,
    "telemetry": 8888,
    "health": 13133,
}
# Two-tier mode: the agent takes the single Collector's OTLP ports, so apps need no
# change; gateway-i adds 100 * (i - 1) to each of GATEWAY_PORTS.
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


def gateway_names(count: int) -> list[str]:
    """``gateway-1`` .. ``gateway-<count>``: the gateway processes of a two-tier stack."""
    return [f"{Gateway.kind}-{i}" for i in range(1, count + 1)]


def gateway_index(name: str) -> int | None:
    """``3`` for ``gateway-3``; None for anything else."""
    prefix, _, number = name.partition("-")
    if prefix != Gateway.kind or not number.isdigit() or int(number) < 1:
        return None
    return int(number)


class _CollectorTier(Component):
    """What the single Collector, the agent and the gateways share: one binary, one env."""

    source_name: ClassVar[str]
    #: The JSONL files overlay over ``source_name`` (None: this tier has none).
    files_overlay: ClassVar[str | None] = None

    @classmethod
    def knobs(cls) -> dict[str, str]:
        return {}  # the Collector's own, once

    def find_binary(self, progress: Progress) -> str:
        try:
            return str(collector_binary())
        except CollectorBuildError as exc:  # one message for the agent and all gateways
            raise StackError(str(exc), Collector.kind) from None

    def ready_url(self, ctx: StackContext) -> str:
        return ctx.url(self.name, "health", "/")

    def main_url(self, ctx: StackContext) -> str:
        return ctx.url(self.name, "otlp_http")

    def scrape_targets(self, ctx: StackContext) -> dict[str, list[str]]:
        targets = {"otel-collector-internal": [ctx.address(self.name, "telemetry")]}
        if "prometheus_exporter" in self.ports:
            targets["otel-collector"] = [ctx.address(self.name, "prometheus_exporter")]
        return targets

    def source(self, ctx: StackContext) -> Path:
        return find_assets("collector") / self.source_name

    def launch(
        self, ctx: StackContext, binary: str, env: Mapping[str, str], overlays: Sequence[Path] = ()
    ) -> Launch:
        """Copy the config, write the env file (for people), return argv and env."""
        config_path = self.config_path(ctx.state_dir)
        copy_private(self.source(ctx), config_path, ctx.state_dir)
        env_vars = {
            "OTELCOL_OTLP_GRPC_ENDPOINT": ctx.address(self.name, "otlp_grpc"),
            "OTELCOL_OTLP_HTTP_ENDPOINT": ctx.address(self.name, "otlp_http"),
            "OTELCOL_HEALTH_ENDPOINT": ctx.address(self.name, "health"),
            "OTELCOL_TELEMETRY_HOST": process.LOOPBACK,
            "OTELCOL_TELEMETRY_PORT": str(ctx.port(self.name, "telemetry")),
        }
        if "prometheus_exporter" in self.ports:
            env_vars["OTELCOL_PROMETHEUS_ENDPOINT"] = ctx.address(self.name, "prometheus_exporter")
        env_vars = {**ctx.config.collector_env, **env, **env_vars}  # the stack's ports win
        write_private(
            config_path.parent / "env", "".join(f"{k}={v}\n" for k, v in env_vars.items())
        )
        argv = [binary, f"--config={config_path}", *(f"--config={o}" for o in overlays)]
        return Launch(argv, collector_env(env_vars))

    def store_launch(self, ctx: StackContext, binary: str, env: Mapping[str, str]) -> Launch:
        """Launch with the stores' endpoints and a private queue dir, plus the files overlay
        when it applies."""
        env = {**store_env(ctx, self.name), **env}
        return self.launch(ctx, binary, env, self.overlays(ctx, env))

    def overlays(self, ctx: StackContext, env: Mapping[str, str]) -> list[Path]:
        """The files overlay when asked for (``jsonl_files``), or when a store is missing
        from the stack, so the Collector always has somewhere to send.

        Only once the overlay exists (before it, the config wrote the files itself).
        """
        if self.files_overlay is None:
            return []
        source = find_assets("collector") / self.files_overlay
        if not source.is_file():
            return []
        if all(name in env for name in STORE_ENV) and not ctx.config.jsonl_files:
            return []
        target = ctx.home(self.name) / self.files_overlay
        copy_private(source, target, ctx.state_dir)
        return [target]


class Collector(_CollectorTier):
    """The single Collector (``collector/config.yaml``), or the two-tier set it expands into."""

    kind = "collector"
    start_rank = 30
    default_ports = COLLECTOR_PORTS
    env_bin = "OTELCOL_BIN"
    source_name = "config.yaml"
    files_overlay = FILES_OVERLAY

    @classmethod
    def knobs(cls) -> dict[str, str]:
        text = "the Collector binary (default: the `otel-tdd collector build` cache)"
        return {"OTELCOL_BIN": text}

    @classmethod
    def expand(cls, config: StackOptions) -> list[str]:
        if not config.gateways:
            return [cls.kind]
        resolver = [RESOLVER] if config.resolver_interval is not None else []
        return [AGENT, *gateway_names(config.gateways), *resolver]

    def source(self, ctx: StackContext) -> Path:
        return ctx.config.collector_config or super().source(ctx)

    def prepare(self, ctx: StackContext, binary: str) -> Launch:
        return self.store_launch(ctx, binary, {})

    def overlays(self, ctx: StackContext, env: Mapping[str, str]) -> list[Path]:
        """``collector/files.yaml`` as the tier's rule says, but only over the shipped
        config: a config of your own says where it sends."""
        if ctx.config.collector_config:
            return []
        return super().overlays(ctx, env)

    def urls(self, ctx: StackContext) -> list[Url]:
        return [
            Url("otlp_grpc", "OTLP gRPC", ctx.url(self.name, "otlp_grpc")),
            Url("otlp_http", "OTLP HTTP", ctx.url(self.name, "otlp_http")),
            Url(
                "collector_metrics",
                "Collector /metrics (app + span metrics)",
                ctx.url(self.name, "prometheus_exporter", "/metrics"),
            ),
            Url("collector_telemetry", "Collector self-metrics", telemetry_url(ctx, self.name)),
            Url("collector_health", "Collector health", ctx.url(self.name, "health", "/")),
        ]


class Agent(_CollectorTier):
    """Two-tier mode's front: the app sends here; it routes by trace id to the gateways."""

    kind = AGENT
    start_rank = 40
    selectable = False
    default_ports = AGENT_PORTS
    source_name = "agent.yaml"
    overlay_name = "gateways.yaml"

    def prepare(self, ctx: StackContext, binary: str) -> Launch:
        gateways = [g.name for g in ctx.members if g.kind == Gateway.kind]
        endpoints = [ctx.address(g, "otlp_grpc") for g in gateways]
        overlay = self.write_overlay(ctx.state_dir, endpoints)
        env = {"OTELCOL_GATEWAY_ENDPOINTS": json.dumps(endpoints)}
        return self.launch(ctx, binary, env, [overlay])

    @classmethod
    def overlay_path(cls, state_dir: Path) -> Path:
        """The agent's gateway list, merged over agent.yaml; ``rebalance`` rewrites it."""
        return state_dir / AGENT / cls.overlay_name

    @classmethod
    def write_overlay(cls, state_dir: Path, endpoints: Sequence[str]) -> Path:
        """The static resolver's list for both load_balancing exporters."""
        overlay = {
            "exporters": {
                name: {"resolver": {"static": {"hostnames": list(endpoints)}}}
                for name in ("load_balancing", "load_balancing/metrics")
            }
        }
        path = cls.overlay_path(state_dir)
        write_yaml(path, overlay, find_assets("collector") / cls.source_name)
        return path

    @classmethod
    def routes(cls, state_dir: Path) -> list[str]:
        """The gateway endpoints in the overlay now ([] before the first ``up``)."""
        try:
            overlay = yaml.safe_load(cls.overlay_path(state_dir).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        static = overlay["exporters"]["load_balancing"]["resolver"]["static"]
        return [str(host) for host in static["hostnames"]]

    def urls(self, ctx: StackContext) -> list[Url]:
        return [
            Url("otlp_grpc", "OTLP gRPC", ctx.url(self.name, "otlp_grpc")),
            Url("otlp_http", "OTLP HTTP", ctx.url(self.name, "otlp_http")),
            Url("collector_telemetry", "Collector self-metrics", telemetry_url(ctx, self.name)),
            Url("collector_health", "Collector health", ctx.url(self.name, "health", "/")),
        ]


class Gateway(_CollectorTier):
    """``gateway-i`` of a two-tier stack: its own ports (shifted by 100 each) and data."""

    kind = "gateway"
    start_rank = 20
    selectable = False
    name_pattern = "gateway-N"
    source_name = "gateway.yaml"
    files_overlay = GATEWAY_FILES_OVERLAY

    @classmethod
    def owns(cls, name: str) -> bool:
        return gateway_index(name) is not None

    @property
    def index(self) -> int:
        return gateway_index(self.name) or 0

    @property
    def ports(self) -> Mapping[str, int]:
        shift = 100 * (self.index - 1)
        return {port: number + shift for port, number in GATEWAY_PORTS.items()}

    def prepare(self, ctx: StackContext, binary: str) -> Launch:
        # Each gateway its own queue dir and file dir (store_env: under its home).
        return self.store_launch(ctx, binary, {"OTELCOL_GATEWAY_NAME": self.name})

    def main_url(self, ctx: StackContext) -> str:
        return ctx.url(self.name, "otlp_grpc")

    def urls(self, ctx: StackContext) -> list[Url]:
        return [
            Url(
                f"{self.name}_otlp_grpc",
                f"{self.name} OTLP gRPC (from the agent)",
                ctx.url(self.name, "otlp_grpc"),
            ),
            Url(
                f"{self.name}_metrics",
                f"{self.name} /metrics (app + span metrics)",
                ctx.url(self.name, "prometheus_exporter", "/metrics"),
            ),
        ]


# Where the Collector exports logs and traces; set by the store components (collector_env).
STORE_ENV = ("OTELCOL_LOGS_STORE_ENDPOINT", "OTELCOL_TRACES_STORE_ENDPOINT")


def file_dir(state_dir: Path, name: str) -> Path:
    """Where a Collector's file exporters write traces/logs/metrics.jsonl."""
    return state_dir / name / "data"


def telemetry_url(ctx: StackContext, name: str) -> str:
    return ctx.url(name, "telemetry", "/metrics")


def store_env(ctx: StackContext, name: str) -> dict[str, str]:
    """File dir, sending-queue dir (private) and the endpoints of the stores in the stack."""
    queue = make_private_dir(ctx.home(name) / "queue", ctx.state_dir)
    env = {"OTELCOL_FILE_DIR": str(file_dir(ctx.state_dir, name)), "OTELCOL_QUEUE_DIR": str(queue)}
    make_private_dir(file_dir(ctx.state_dir, name), ctx.state_dir)
    for member in ctx.members:
        env.update(member.collector_env(ctx))
    return env
