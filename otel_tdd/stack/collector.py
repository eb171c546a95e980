"""Build, find and check the otel-tdd OpenTelemetry Collector distribution.

No registry this project can use ships a full Collector, so we build our own
from ``collector/manifest.yaml`` with the OpenTelemetry Collector Builder (ocb).
A build takes minutes, so the binary is cached by the manifest's hash and only
rebuilt when the manifest changes. ``OTELCOL_BIN`` short-circuits all of it for
people who already have a Collector binary.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import yaml

__all__ = [
    "BINARY_NAME",
    "BUILDER_VERSION",
    "DEFAULT_ENV",
    "CollectorBuildError",
    "build_collector",
    "cached_binary_path",
    "cached_go_build",
    "cli",
    "collector_binary",
    "collector_env",
    "find_collector_dir",
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
ENV_CACHE = "OTEL_TDD_CACHE_DIR"

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

_LOG_TAIL_LINES = 25
_HEARTBEAT_SECONDS = 30.0
# ocb's own step messages worth relaying as progress (the rest goes to the log).
_BUILDER_STEPS = re.compile(r"Sources created|Getting go modules|Compiling|Compiled")

Progress = Callable[[str], None]


class CollectorBuildError(Exception):
    """The Collector binary cannot be built or found; the message says what to do."""


def _stderr_progress(line: str) -> None:
    """Default progress sink: stderr, so `collector path` output stays parseable."""
    print(f"otel-tdd collector: {line}", file=sys.stderr, flush=True)


# --- where things are -------------------------------------------------------


def find_collector_dir() -> Path:
    """Locate ``collector/``: the checkout's top-level folder, else the wheel's copy.

    A checkout is recognised by ``pyproject.toml`` beside ``collector/`` so that an
    unrelated ``collector`` folder in site-packages is never picked up.
    """
    package_dir = Path(__file__).resolve().parent.parent
    checkout = package_dir.parent
    candidates = [checkout / "collector", package_dir / "_assets" / "collector"]
    if not (checkout / "pyproject.toml").is_file():
        candidates.pop(0)
    for candidate in candidates:
        if (candidate / "manifest.yaml").is_file():
            return candidate
    raise CollectorBuildError(
        "cannot find the collector/ folder (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); reinstall otel-tdd or run from a checkout"
    )


def find_manifest() -> Path:
    """The ocb manifest that defines our distribution."""
    return find_collector_dir() / "manifest.yaml"


def find_config() -> Path:
    """The single-node pipeline config shipped next to the manifest."""
    return find_collector_dir() / "config.yaml"


def cache_root() -> Path:
    """Everything we download or build lives here; ``OTEL_TDD_CACHE_DIR`` moves it."""
    override = os.environ.get(ENV_CACHE)
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "otel-tdd"


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


def _parse_go_version(text: str) -> tuple[int, int] | None:
    match = re.search(r"go(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


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
    version = _parse_go_version(out)
    if version is None or version < MIN_GO:
        raise _no_go_error(f"{go} is {out.strip() or 'of unknown version'}")
    return go


# --- building -----------------------------------------------------------------


class _Clock:
    """Prefixes progress lines with the time since the build started."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._start = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def say(self, message: str) -> None:
        self._progress(f"[{self.elapsed:6.1f}s] {message}")


def _tail(log: Path, lines: int = _LOG_TAIL_LINES) -> str:
    with log.open(encoding="utf-8", errors="replace") as fh:
        return "".join(deque(fh, maxlen=lines))


def _pump(stream: IO[str], log: IO[str], clock: _Clock) -> None:
    """Copy the builder's output to the log, relaying its step messages."""
    for line in stream:
        log.write(line)
        log.flush()
        if _BUILDER_STEPS.search(line):
            clock.say("ocb: " + _ocb_message(line))


def _ocb_message(line: str) -> str:
    """The message field of ocb's zap line: time, level, caller, message[, fields]."""
    fields = line.rstrip("\n").split("\t")
    return fields[3] if len(fields) > 3 else line.strip()


def _run_logged(cmd: list[str], log: Path, clock: _Clock, env: Mapping[str, str]) -> None:
    """Run ``cmd`` with its output in ``log``; say it is alive; fail with the log's tail."""
    with log.open("a", encoding="utf-8") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=log.parent,
            env=dict(env),
        )
        assert proc.stdout is not None
        pump = threading.Thread(target=_pump, args=(proc.stdout, fh, clock), daemon=True)
        pump.start()
        while True:
            try:
                code = proc.wait(timeout=_HEARTBEAT_SECONDS)
                break
            except subprocess.TimeoutExpired:
                clock.say(f"still running (log: {log})")
        pump.join(timeout=5)
    if code != 0:
        raise CollectorBuildError(
            f"`{' '.join(cmd[:2])} ...` failed with exit code {code}; full log: {log}\n"
            f"--- last lines ---\n{_tail(log)}"
        )


def _ensure_builder(go: str, workdir: Path, clock: _Clock) -> Path:
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


@contextlib.contextmanager
def _build_lock(workdir: Path) -> Iterator[None]:
    """Serialise concurrent builds of one manifest (two test sessions, say)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock, last writer wins
        yield
        return
    with (workdir / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


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

    def build(go: str, workdir: Path, clock: _Clock) -> Path:
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


def cached_go_build(
    target: Path,
    *,
    label: str,
    describe: str,
    find_go: Callable[[], str],
    build: Callable[[str, Path, _Clock], Path],
    missing: Callable[[Path, Path], Exception],
    progress: Progress,
    force: bool,
) -> Path:
    """Reuse ``target`` or build it once under a lock, with build.log beside it.

    Shared by the Collector and the store builds: ``build(go, workdir, clock)``
    returns where it left the binary, which then replaces ``target`` atomically.
    """
    if target.is_file() and not force:
        progress(f"{label}up to date: {target}")
        return target
    go = find_go()
    workdir = target.parent
    workdir.mkdir(parents=True, exist_ok=True)
    clock = _Clock(progress)
    with _build_lock(workdir):
        if target.is_file() and not force:  # built by another process while we waited
            clock.say(f"{label}up to date: {target}")
            return target
        log = workdir / "build.log"
        log.write_text("", encoding="utf-8")
        clock.say(f"building {describe} (log: {log})")
        built = build(go, workdir, clock)
        if not built.is_file():
            raise missing(built, log)
        os.replace(built, target)  # atomic: a half-built binary is never `target`
        clock.say(f"built {target} in {clock.elapsed:.0f}s")
    return target


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
    config: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the binary's own ``validate``: it knows our components, no schema does."""
    config = config or find_config()
    return subprocess.run(
        [str(collector_binary()), "validate", f"--config={config}"],
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
    return parser


def _cmd_build(force: bool) -> int:
    override = os.environ.get(ENV_BIN)
    if override and not force:
        _stderr_progress(f"{ENV_BIN} is set; using {_checked_env_binary(override)}, not building")
        return 0
    build_collector(force=force)
    return 0


def _cmd_validate(config: Path | None) -> int:
    result = validate_config(config)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if result.returncode == 0:
        print(f"{config or find_config()}: valid")
    return result.returncode


def cli(argv: list[str]) -> int:
    """``otel-tdd collector build [--force] | path | validate [CONFIG]``."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "build":
            return _cmd_build(args.force)
        if args.command == "path":
            print(collector_binary())
            return 0
        return _cmd_validate(args.config)
    except CollectorBuildError as exc:
        print(f"otel-tdd collector: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli(sys.argv[1:]))
