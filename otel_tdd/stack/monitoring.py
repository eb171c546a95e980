"""Prometheus and Alertmanager (Debian's packages) as stack components, from compose's files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from otel_tdd.stack.assets import find_assets
from otel_tdd.stack.component import Component, Launch, Progress, StackContext, StackError, Url
from otel_tdd.stack.private_files import copy_private, make_private_dir, write_private
from otel_tdd.stack.render import (
    copy_rules,
    render_alertmanager_config,
    render_prometheus_config,
    write_yaml,
)

__all__ = ["Alertmanager", "Prometheus", "add_slo_rules"]

_PLACEHOLDER_SECRETS: Mapping[str, str] = {
    # .invalid never resolves (RFC 2606): a notification fails visibly in the log.
    "slack_webhook_url": "https://hooks.slack.invalid/otel-tdd-placeholder",
    "smtp_password": "otel-tdd-placeholder-not-a-password",
    "webhook_token": "otel-tdd-placeholder-token",
}


class Prometheus(Component):
    """Scrapes every component's targets; alerts into Alertmanager. Up last, down first."""

    kind = "prometheus"
    start_rank = 60
    default_ports = {"web": 9090}
    binary_names = ("prometheus",)
    env_bin = "OTEL_TDD_PROMETHEUS_BIN"
    install_hint = "apt-get install prometheus (Debian/Ubuntu), or set OTEL_TDD_PROMETHEUS_BIN"
    config_name = "prometheus.yml"

    def prepare(self, ctx: StackContext, binary: str) -> Launch:
        home = ctx.home(self.name)
        data = make_private_dir(home / "data", ctx.state_dir)
        compose = find_assets("compose")
        source = compose / "prometheus" / "prometheus.yml"
        targets: dict[str, list[str]] = {}
        for member in ctx.members:
            for job, job_targets in member.scrape_targets(ctx).items():
                targets.setdefault(job, []).extend(job_targets)
        alertmanagers = [
            ctx.address(m.name, "web") for m in ctx.members if m.kind == Alertmanager.kind
        ]
        rendered, dropped = render_prometheus_config(
            yaml.safe_load(source.read_text(encoding="utf-8")), targets, alertmanagers
        )
        config_path = self.config_path(ctx.state_dir)
        write_yaml(config_path, rendered, source)
        rules = home / "rules"
        copy_rules(ctx.config.rules_dir or compose / "prometheus" / "rules", rules)
        add_slo_rules(ctx.config.slo_rules_dir, rules, ctx.progress)
        if dropped:
            ctx.progress(f"{self.name:<13} scrape jobs not run locally: {', '.join(dropped)}")
        return Launch(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={data}",
                "--storage.tsdb.retention.time=31d",  # as compose: SLO budgets span 30 days
                f"--web.listen-address={ctx.address(self.name, 'web')}",
                "--web.enable-lifecycle",
                # Exemplars: the trace ids behind a histogram's buckets (/api/v1/query_exemplars).
                "--enable-feature=exemplar-storage",
            ]
        )

    def ready_url(self, ctx: StackContext) -> str:
        return ctx.url(self.name, "web", "/-/ready")

    def main_url(self, ctx: StackContext) -> str:
        return ctx.url(self.name, "web")

    def urls(self, ctx: StackContext) -> list[Url]:
        return [Url("prometheus", "Prometheus", self.main_url(ctx))]

    def scrape_targets(self, ctx: StackContext) -> dict[str, list[str]]:
        targets = {"prometheus": [ctx.address(self.name, "web")]}
        if ctx.config.app_target:
            targets["app"] = [ctx.config.app_target]
        return targets


def add_slo_rules(source: Path | None, rules: Path, progress: Progress) -> None:
    """Copy the generated SLO rule files (``slo-*.yml``) next to the shipped ones."""
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
    progress(f"{'prometheus':<13} SLO rules: {', '.join(p.name for p in files)}")


class Alertmanager(Component):
    """Routes Prometheus's alerts and ``alert()``'s to the receivers (local sinks in tests)."""

    kind = "alertmanager"
    start_rank = 50
    default_ports = {"web": 9093}
    binary_names = ("prometheus-alertmanager", "alertmanager")
    env_bin = "OTEL_TDD_ALERTMANAGER_BIN"
    install_hint = (
        "apt-get install prometheus-alertmanager (Debian/Ubuntu), or set OTEL_TDD_ALERTMANAGER_BIN"
    )
    config_name = "alertmanager.yml"

    @classmethod
    def knobs(cls) -> dict[str, str]:
        return {
            "OTEL_TDD_ALERTMANAGER_BIN": "the Alertmanager binary (default: "
            "`prometheus-alertmanager`, `alertmanager` on PATH)"
        }

    def prepare(self, ctx: StackContext, binary: str) -> Launch:
        home = ctx.home(self.name)
        data = make_private_dir(home / "data", ctx.state_dir)
        source = find_assets("compose") / "alertmanager" / "alertmanager.yml"
        secrets_dir = ctx.config.secrets_dir or home / "secrets"
        rendered, secret_names = render_alertmanager_config(
            yaml.safe_load(source.read_text(encoding="utf-8")),
            secrets_dir,
            ctx.config.receivers,
        )
        self._write_secrets(ctx, secrets_dir, secret_names)
        config_path = self.config_path(ctx.state_dir)
        write_yaml(config_path, rendered, source)
        return Launch(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.path={data}",
                f"--web.listen-address={ctx.address(self.name, 'web')}",
                "--cluster.listen-address=",
            ]
        )

    def _write_secrets(self, ctx: StackContext, secrets_dir: Path, names: list[str]) -> None:
        if ctx.config.secrets_dir is not None:  # the user's own files: read, never written
            missing = [n for n in names if not (secrets_dir / n).is_file()]
            if missing:
                raise StackError(
                    f"secrets dir {secrets_dir} lacks {', '.join(missing)} "
                    "(one file per secret alertmanager.yml reads)",
                    self.kind,
                )
            return
        for name in names:
            value = _PLACEHOLDER_SECRETS.get(name, f"otel-tdd-placeholder-{name}")
            if name == "slack_webhook_url" and ctx.config.receivers.slack_api_url:
                value = ctx.config.receivers.slack_api_url
            write_private(secrets_dir / name, value)  # a planted symlink is refused

    def ready_url(self, ctx: StackContext) -> str:
        return ctx.url(self.name, "web", "/-/ready")

    def main_url(self, ctx: StackContext) -> str:
        return ctx.url(self.name, "web")

    def urls(self, ctx: StackContext) -> list[Url]:
        return [Url("alertmanager", "Alertmanager", self.main_url(ctx))]

    def scrape_targets(self, ctx: StackContext) -> dict[str, list[str]]:
        return {"alertmanager": [ctx.address(self.name, "web")]}
