"""The compose files rendered for loopback: Prometheus's scrape jobs, Alertmanager's receivers."""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from otel_tdd.stack.private_files import (
    UnsafePathError,
    copy_private,
    make_private_dir,
    write_private,
)
from otel_tdd.stack.process import LOOPBACK

__all__ = [
    "Receivers",
    "copy_rules",
    "loopback",
    "render_alertmanager_config",
    "render_prometheus_config",
    "write_yaml",
]

_SECRETS_PREFIX = "/etc/alertmanager/secrets/"
# Where compose's webhook receiver points (the Docker host); locally that is loopback.
_DOCKER_HOST = "host.docker.internal"


def loopback(port: int) -> str:
    """``127.0.0.1:PORT``."""
    return f"{LOOPBACK}:{port}"


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


def render_prometheus_config(
    source: Mapping[str, Any],
    targets: Mapping[str, Sequence[str]],
    alertmanagers: Sequence[str] = (),
) -> tuple[dict[str, Any], list[str]]:
    """compose's prometheus.yml with each job scraping ``targets[job_name]``.

    Jobs are found by ``job_name`` (an interface, see compose/prometheus/prometheus.yml);
    a job with no targets here (node-exporter, app without a target) is dropped, and
    a job in ``targets`` that the file lacks is added with defaults. Alerts go to
    ``alertmanagers`` (none: no alerting section). Returns the config and the
    names of the dropped jobs.
    """
    config: dict[str, Any] = json.loads(json.dumps(source))  # deep copy, plain types
    kept, dropped, seen = [], [], set()
    for job in config.get("scrape_configs") or []:
        name = str(job.get("job_name", ""))
        if not targets.get(name):
            dropped.append(name)
            continue
        seen.add(name)
        job.pop("file_sd_configs", None)
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": list(targets[name])}]
        kept.append(job)
    for name, job_targets in targets.items():
        if name not in seen and job_targets:
            kept.append({"job_name": name, "static_configs": [{"targets": list(job_targets)}]})
    config["scrape_configs"] = kept
    if alertmanagers:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": alertmanagers}]}]}
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
                webhook["url"] = str(webhook["url"]).replace(_DOCKER_HOST, LOOPBACK)
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


def write_yaml(path: Path, data: Mapping[str, Any], source: Path) -> None:
    """Write a rendered config, private (alertmanager.yml holds the webhook URL: 0600)."""
    header = (
        f"# Rendered by `otel-tdd stack up` from {source}.\n"
        "# Edit the source, not this file: the next `up` rewrites it.\n"
    )
    text = yaml.dump(dict(data), Dumper=_Dumper, sort_keys=False, width=1_000_000)
    write_private(path, header + text)


def copy_rules(source: Path, target: Path) -> None:
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
