"""Build, find and check the otel-tdd OpenTelemetry Collector distribution.

Built with ocb from ``collector/manifest.yaml`` (no registry we can use ships a full
Collector) and cached by the manifest's hash; ``OTELCOL_BIN`` points at another binary.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

# Relative: this module depends on nothing beyond the stdlib and yaml (its unit test checks).
from .assets import AssetError, find_assets
from .gobuild import (
    ENV_CACHE,
    Clock,
    GoBuildError,
    Progress,
    cache_root,
    cached_go_build,
    parse_go_version,
    run_logged,
)

__all__ = [
    "BINARY_NAME",
    "BUILDER_VERSION",
    "DEFAULT_ENV",
    "CollectorBuildError",
    "build_collector",
    "cached_binary_path",
    "cli",
    "collector_binary",
    "collector_env",
    "find_config",
    "find_manifest",
    "manifest_key",
    "validate_config",
]

BUILDER_MODULE = "go.opentelemetry.io/collector/cmd/builder"
# Must be the release every component in collector/manifest.yaml is pinned to:
# ocb checks that the core modules match its own version.
BUILDER_VERSION = "v0.161.0"
MIN_GO = (1, 25)
BINARY_NAME = "otelcol-tdd"
ENV_BIN = "OTELCOL_BIN"

# The variables collector/config.yaml substitutes, with the defaults it uses.
# The stack and docker-compose set them; `collector_env` fills in the rest so a
# caller that sets one port does not have to know all the others.
DEFAULT_ENV: Mapping[str, str] = {
    "OTELCOL_OTLP_GRPC_ENDPOINT": "127.0.0.1:4317",
    "OTELCOL_OTLP_HTTP_ENDPOINT": "127.0.0.1:4318",
    "OTELCOL_PROMETHEUS_ENDPOINT": "127.0.0.1:8889",
    "OTELCOL_HEALTH_ENDPOINT": "127.0.0.1:13133",
    "OTELCOL_TELEMETRY_HOST": "127.0.0.1",
    "OTELCOL_TELEMETRY_PORT": "8888",
    "OTELCOL_FILE_DIR": "./otelcol-data",
}

# ocb's own step messages worth relaying as progress (the rest goes to the log).
_BUILDER_STEPS = re.compile(r"Sources created|Getting go modules|Compiling|Compiled")


class CollectorBuildError(GoBuildError):
    """The Collector binary cannot be built or found; the message says what to do."""


def _stderr_progress(line: str) -> None:
    """Default progress sink: stderr, so `collector path` output stays parseable."""
    print(f"otel-tdd collector: {line}", file=sys.stderr, flush=True)


# --- where things are -------------------------------------------------------


def find_manifest() -> Path:
    """The ocb manifest that defines our distribution."""
    return find_assets("collector") / "manifest.yaml"


def find_config() -> Path:
    """The single-node pipeline config shipped next to the manifest."""
    return find_assets("collector") / "config.yaml"


def manifest_key(manifest: Path) -> str:
    """Cache key: any change to the manifest (a pin, a component) means a new build."""
    return hashlib.sha256(manifest.read_bytes()).hexdigest()[:16]


def cached_binary_path(manifest: Path | None = None) -> Path:
    """Where the binary for ``manifest`` is (or will be) cached."""
    manifest = manifest or find_manifest()
    return cache_root() / "collector" / manifest_key(manifest) / BINARY_NAME


def _builder_path() -> Path:
    return cache_root() / "builder" / BUILDER_VERSION / "builder"


# --- the Go toolchain ---------------------------------------------------------


def _no_go_error(detail: str) -> CollectorBuildError:
    return CollectorBuildError(
        f"building the Collector needs Go >= {MIN_GO[0]}.{MIN_GO[1]} ({detail}). "
        f"Install Go {MIN_GO[0]}.{MIN_GO[1]}+ from your distribution or go.dev, "
        f"or set {ENV_BIN}=/path/to/otelcol-contrib to use an existing Collector binary "
        "instead."
    )


def find_go() -> str:
    """Return a usable ``go`` executable, or explain how to get one."""
    go = shutil.which("go")
    if go is None:
        raise _no_go_error("no `go` found on PATH")
    try:
        out = subprocess.run(
            [go, "env", "GOVERSION"], capture_output=True, text=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise _no_go_error(f"`{go} env GOVERSION` failed: {exc}") from exc
    version = parse_go_version(out)
    if version is None or version < MIN_GO:
        raise _no_go_error(f"{go} is {out.strip() or 'of unknown version'}")
    return go


# --- building -----------------------------------------------------------------


def _ocb_step(line: str) -> str | None:
    """ocb's step messages as progress ("ocb: Compiling"); None for any other line.

    The message field of ocb's zap line: time, level, caller, message[, fields].
    """
    if not _BUILDER_STEPS.search(line):
        return None
    fields = line.rstrip("\n").split("\t")
    return "ocb: " + (fields[3] if len(fields) > 3 else line.strip())


def _run_logged(cmd: list[str], log: Path, clock: Clock, env: Mapping[str, str]) -> None:
    run_logged(cmd, log, clock, env, relay=_ocb_step, error=CollectorBuildError)


def _ensure_builder(go: str, workdir: Path, clock: Clock) -> Path:
    """Install the pinned ocb into the cache, once; a PATH `builder` may be any version."""
    builder = _builder_path()
    if builder.is_file() and os.access(builder, os.X_OK):
        return builder
    clock.say(f"installing ocb {BUILDER_VERSION} with go install")
    builder.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(builder.parent)}
    _run_logged(
        [go, "install", f"{BUILDER_MODULE}@{BUILDER_VERSION}"], workdir / "build.log", clock, env
    )
    return builder


def _render_manifest(manifest: Path, workdir: Path, go: str) -> Path:
    """Copy the manifest with output path and Go pinned, so the build is cwd-independent."""
    data: dict[str, Any] = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    dist = data.setdefault("dist", {})
    dist["output_path"] = str(workdir / "src")
    dist["name"] = BINARY_NAME
    dist["go"] = go
    rendered = workdir / "manifest.yaml"
    rendered.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return rendered


def build_collector(
    manifest: Path | None = None,
    *,
    progress: Progress = _stderr_progress,
    force: bool = False,
) -> Path:
    """Build the distribution with ocb (or reuse the cached build) and return its path.

    The builder's full output goes to ``build.log`` beside the cached binary; on
    failure the error names that file and quotes its last lines.
    """
    manifest = (manifest or find_manifest()).resolve()

    def build(go: str, workdir: Path, clock: Clock) -> Path:
        builder = _ensure_builder(go, workdir, clock)
        rendered = _render_manifest(manifest, workdir, go)
        clock.say("running ocb: generate sources, fetch Go modules, compile (minutes)")
        _run_logged(
            [str(builder), f"--config={rendered}"], workdir / "build.log", clock, os.environ
        )
        return workdir / "src" / BINARY_NAME

    return cached_go_build(
        cached_binary_path(manifest),
        label="",
        describe=f"{BINARY_NAME} from {manifest}",
        find_go=find_go,
        build=build,
        missing=lambda built, log: CollectorBuildError(
            f"ocb succeeded but {built} is missing; see the log"
        ),
        progress=progress,
        force=force,
    )


# --- finding a binary -----------------------------------------------------------


def _checked_env_binary(value: str) -> Path:
    path = Path(value).expanduser()
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise CollectorBuildError(
            f"{ENV_BIN}={value} is not an executable file; point {ENV_BIN} at a Collector "
            "binary or unset it to use the one `otel-tdd collector build` makes"
        )
    return path


def collector_binary() -> Path:
    """The Collector to run: ``OTELCOL_BIN`` if set, else our cached build."""
    override = os.environ.get(ENV_BIN)
    if override:
        return _checked_env_binary(override)
    cached = cached_binary_path()
    if cached.is_file() and os.access(cached, os.X_OK):
        return cached
    raise CollectorBuildError(
        f"the Collector is not built for this manifest (expected {cached}); run "
        f"`otel-tdd collector build`, or set {ENV_BIN}=/path/to/otelcol-contrib"
    )


def collector_env(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment with every config variable set (defaults filled in)."""
    env = dict(os.environ)
    for name, default in DEFAULT_ENV.items():
        env.setdefault(name, default)
    env.update(overrides or {})
    return env


def validate_config(
    config: Path | None = None,
    env: Mapping[str, str] | None = None,
    overlays: Sequence[Path] = (),
) -> subprocess.CompletedProcess[str]:
    """Run the binary's own ``validate``: it knows our components, no schema does.

    ``overlays`` are merged over ``config`` in order, as a second ``--config`` is
    (e.g. collector/gateway.yaml + collector/gateway-files.yaml).
    """
    configs = [config or find_config(), *overlays]
    return subprocess.run(
        [str(collector_binary()), "validate", *(f"--config={c}" for c in configs)],
        capture_output=True,
        text=True,
        env=collector_env(env),
        timeout=120,
        check=False,
    )


# --- command line ---------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-tdd collector",
        description="Build, locate and validate the otel-tdd Collector distribution. "
        f"{ENV_BIN} points at an existing binary instead; {ENV_CACHE} moves the cache "
        "(default ~/.cache/otel-tdd).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build with ocb (cached by manifest hash)")
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    sub.add_parser("path", help="print the Collector binary's path")
    validate = sub.add_parser("validate", help="check a config with the binary itself")
    validate.add_argument("config", nargs="?", type=Path, help="default: collector/config.yaml")
    validate.add_argument(
        "overlays", nargs="*", type=Path, help="overlays merged over CONFIG, in order"
    )
    return parser


def _cmd_build(force: bool) -> int:
    override = os.environ.get(ENV_BIN)
    if override and not force:
        _stderr_progress(f"{ENV_BIN} is set; using {_checked_env_binary(override)}, not building")
        return 0
    build_collector(force=force)
    return 0


def _cmd_validate(config: Path | None, overlays: Sequence[Path]) -> int:
    result = validate_config(config, overlays=overlays)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if result.returncode == 0:
        print(f"{' + '.join(str(c) for c in [config or find_config(), *overlays])}: valid")
    return result.returncode


def cli(argv: list[str]) -> int:
    """``otel-tdd collector build [--force] | path | validate [CONFIG [OVERLAY...]]``."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "build":
            return _cmd_build(args.force)
        if args.command == "path":
            print(collector_binary())
            return 0
        return _cmd_validate(args.config, args.overlays)
    except (CollectorBuildError, AssetError) as exc:
        print(f"otel-tdd collector: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli(sys.argv[1:]))
