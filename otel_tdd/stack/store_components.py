"""The log store (VictoriaLogs) and the trace store (Jaeger v2) as stack components.

``up`` builds each (cached by version, progress lines) unless its ``*_BIN``
variable points at a binary, and starts it on 127.0.0.1 with its data in the
state directory; the Collector learns their endpoints through ``collector_env``.
"""

from __future__ import annotations

import os

from otel_tdd.stack.component import Component, Launch, Progress, StackContext, StackError, Url
from otel_tdd.stack.private_files import make_private_dir
from otel_tdd.stack.render import write_yaml
from otel_tdd.stack.store_configs import (
    JaegerPorts,
    find_jaeger_config,
    jaeger_urls,
    load_jaeger_config,
    render_jaeger_config,
    victoria_logs_args,
)
from otel_tdd.stack.stores import (
    JAEGER,
    VICTORIA_LOGS,
    Store,
    StoreBuildError,
    build_store,
    store_binary,
)

__all__ = ["Jaeger", "VictoriaLogs"]


class _Store(Component):
    """A store built from its Go module by ``otel-tdd stores build``."""

    store: Store
    start_rank = 10  # up before the Collectors that send to it, down after they drained

    @classmethod
    def knobs(cls) -> dict[str, str]:
        return {
            cls.store.env_bin: f"the {cls.store.binary} binary "
            f"(default: `otel-tdd stores build {cls.store.name}`, run by `up`)"
        }

    def find_binary(self, progress: Progress) -> str:
        try:
            if os.environ.get(self.store.env_bin):
                return str(store_binary(self.store.name))
            # "victoria-logs v1.52.1 up to date: PATH", not the store's name twice.
            prefix = f"{self.store.name} "
            built = build_store(
                self.store.name,
                progress=lambda line: progress(f"{self.name:<13} {line.removeprefix(prefix)}"),
            )
            return str(built)
        except StoreBuildError as exc:
            raise StackError(str(exc), self.kind) from None


class VictoriaLogs(_Store):
    """Logs over OTLP/HTTP in, LogsQL and its web UI out; ``/metrics``."""

    kind = "victoria-logs"
    store = VICTORIA_LOGS
    default_ports = {"http": 9428}

    def prepare(self, ctx: StackContext, binary: str) -> Launch:
        data = make_private_dir(ctx.home(self.name) / "data", ctx.state_dir)
        return Launch(victoria_logs_args(binary, ctx.port(self.name, "http"), data))

    def ready_url(self, ctx: StackContext) -> str:
        return ctx.url(self.name, "http", "/health")

    def main_url(self, ctx: StackContext) -> str:
        return ctx.url(self.name, "http")

    def urls(self, ctx: StackContext) -> list[Url]:
        return [
            Url("victoria_logs", "VictoriaLogs (LogsQL)", self.main_url(ctx)),
            Url("victoria_logs_ui", "VictoriaLogs UI", ctx.url(self.name, "http", "/select/vmui/")),
        ]

    def scrape_targets(self, ctx: StackContext) -> dict[str, list[str]]:
        # compose/prometheus/prometheus.yml names this job `victorialogs` (its alerts too).
        return {"victorialogs": [ctx.address(self.name, "http")]}

    def collector_env(self, ctx: StackContext) -> dict[str, str]:
        # The base URL: the Collector config appends /insert/opentelemetry/v1/logs.
        return {"OTELCOL_LOGS_STORE_ENDPOINT": self.main_url(ctx)}


class Jaeger(_Store):
    """Traces over OTLP in (Badger on disk), the query API out; its own ``/metrics``."""

    kind = "jaeger"
    store = JAEGER
    # Not the Collector's 4317/4318/13133/8888: both run on one host.
    default_ports = {
        "otlp_grpc": 14317,
        "otlp_http": 14318,
        "query_http": 16686,
        "query_grpc": 16685,
        "health": 13135,
        "metrics": 14269,
    }

    def jaeger_ports(self, ctx: StackContext) -> JaegerPorts:
        return JaegerPorts(**{name: ctx.port(self.name, name) for name in self.default_ports})

    def prepare(self, ctx: StackContext, binary: str) -> Launch:
        data = make_private_dir(ctx.home(self.name) / "data", ctx.state_dir)
        config = render_jaeger_config(load_jaeger_config(), self.jaeger_ports(ctx), data)
        config_path = self.config_path(ctx.state_dir)
        write_yaml(config_path, config, find_jaeger_config())
        return Launch([binary, f"--config={config_path}"])

    def ready_url(self, ctx: StackContext) -> str:
        return jaeger_urls(self.jaeger_ports(ctx), load_jaeger_config())["health"]

    def main_url(self, ctx: StackContext) -> str:
        return ctx.url(self.name, "query_http")

    def urls(self, ctx: StackContext) -> list[Url]:
        return [Url("jaeger", "Jaeger query API (/api/v3/traces/ID)", self.main_url(ctx))]

    def scrape_targets(self, ctx: StackContext) -> dict[str, list[str]]:
        return {"jaeger": [ctx.address(self.name, "metrics")]}

    def collector_env(self, ctx: StackContext) -> dict[str, str]:
        return {"OTELCOL_TRACES_STORE_ENDPOINT": ctx.address(self.name, "otlp_grpc")}
