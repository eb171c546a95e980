"""The stores' configs for a local process: Jaeger's YAML and VictoriaLogs' flags.

``compose/jaeger/config.yaml`` is the one Jaeger config; :func:`render_jaeger_config`
moves every endpoint to a 127.0.0.1 port and Badger's data into a dir of ours.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from otel_tdd.stack.assets import find_assets

__all__ = [
    "JaegerPorts",
    "find_jaeger_config",
    "jaeger_urls",
    "load_jaeger_config",
    "render_jaeger_config",
    "victoria_logs_args",
    "victoria_logs_url",
    "write_jaeger_config",
]

LOOPBACK = "127.0.0.1"
# VictoriaLogs deletes older data itself; Jaeger's span TTL in the compose
# config is the same 7 days, so a trace and its logs expire together.
LOGS_RETENTION = "7d"
LOGS_FLUSH_INTERVAL = "1s"  # VictoriaLogs' minimum; its default is 5s


@dataclass(frozen=True)
class JaegerPorts:
    """The six ports a local Jaeger listens on, all on 127.0.0.1."""

    otlp_grpc: int
    otlp_http: int
    query_http: int
    query_grpc: int
    health: int
    metrics: int


def find_jaeger_config() -> Path:
    """``compose/jaeger/config.yaml`` of the checkout or of the installed wheel."""
    return find_assets("compose") / "jaeger" / "config.yaml"


def load_jaeger_config(path: Path | None = None) -> dict[str, Any]:
    """The shipped Jaeger config as plain data."""
    data: dict[str, Any] = yaml.safe_load(
        (path or find_jaeger_config()).read_text(encoding="utf-8")
    )
    return data


def _addr(port: int) -> str:
    return f"{LOOPBACK}:{port}"


def render_jaeger_config(
    source: Mapping[str, Any], ports: JaegerPorts, data_dir: Path
) -> dict[str, Any]:
    """``source`` with every endpoint on 127.0.0.1 and Badger's data under ``data_dir``.

    Every Badger backend gets ``data_dir/<backend>/keys`` and ``.../values``;
    everything else (TTL, pipeline, ``enable_tracing: false``) is kept as shipped.
    """
    config: dict[str, Any] = json.loads(json.dumps(source))  # deep copy, plain types
    protocols = config["receivers"]["otlp"]["protocols"]
    protocols["grpc"] = {**(protocols.get("grpc") or {}), "endpoint": _addr(ports.otlp_grpc)}
    protocols["http"] = {**(protocols.get("http") or {}), "endpoint": _addr(ports.otlp_http)}
    extensions = config["extensions"]
    query = extensions["jaeger_query"]
    query["http"] = {**(query.get("http") or {}), "endpoint": _addr(ports.query_http)}
    query["grpc"] = {**(query.get("grpc") or {}), "endpoint": _addr(ports.query_grpc)}
    health = extensions["healthcheckv2"]
    health["http"] = {**(health.get("http") or {}), "endpoint": _addr(ports.health)}
    for name, backend in extensions["jaeger_storage"]["backends"].items():
        badger = backend.get("badger")
        if badger is not None:
            badger["directories"] = {
                "keys": str(data_dir / name / "keys"),
                "values": str(data_dir / name / "values"),
            }
    for reader in config["service"]["telemetry"]["metrics"].get("readers") or []:
        exporter = reader.get("pull", {}).get("exporter", {}).get("prometheus")
        if exporter is not None:
            exporter.update(host=LOOPBACK, port=ports.metrics)
    return config


def write_jaeger_config(
    path: Path, ports: JaegerPorts, data_dir: Path, source: Mapping[str, Any] | None = None
) -> Path:
    """Render the shipped config (or ``source``) for local use into ``path``."""
    rendered = render_jaeger_config(source or load_jaeger_config(), ports, data_dir)
    path.write_text(yaml.safe_dump(rendered, sort_keys=False), encoding="utf-8")
    return path


def jaeger_urls(ports: JaegerPorts, config: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Where a Jaeger rendered with ``ports`` answers: query API, health, metrics, OTLP."""
    health_path = "/status"
    if config is not None:
        status = config["extensions"]["healthcheckv2"]["http"].get("status") or {}
        health_path = status.get("path", health_path)
    return {
        "query": f"http://{_addr(ports.query_http)}",
        "health": f"http://{_addr(ports.health)}{health_path}",
        "metrics": f"http://{_addr(ports.metrics)}/metrics",
        "otlp_http": f"http://{_addr(ports.otlp_http)}",
        "otlp_grpc": _addr(ports.otlp_grpc),
    }


def victoria_logs_args(
    binary: Path | str, port: int, data_dir: Path, retention: str = LOGS_RETENTION
) -> list[str]:
    """The command line of a local VictoriaLogs: 127.0.0.1 only, data in ``data_dir``."""
    return [
        str(binary),
        f"-httpListenAddr={_addr(port)}",
        f"-storageDataPath={data_dir}",
        f"-retentionPeriod={retention}",
        # It acknowledges an insert before the data is on disk (no WAL): a crash loses
        # what came in since its last flush. 1 s instead of 5 s shrinks that window
        # (docs/stores.md, "A store crash"; tests/reliability/test_stores_outage_under_load.py).
        f"-inmemoryDataFlushInterval={LOGS_FLUSH_INTERVAL}",
    ]


def victoria_logs_url(port: int) -> str:
    """The base URL of a local VictoriaLogs (query, insert, /health, /metrics, vmui)."""
    return f"http://{_addr(port)}"
