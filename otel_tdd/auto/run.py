"""``otel-tdd run``: start a command with zero-code instrumentation and our defaults.

Design notes: docs/auto-instrumentation.md, "Implementation notes".
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing's: see cli.py
if TYPE_CHECKING:
    from collections.abc import Mapping, MutableMapping, Sequence

__all__ = [
    "OPTIONS",
    "RUN_PID_VARIABLE",
    "SITECUSTOMIZE_DIR",
    "Option",
    "child_environment",
    "cli",
    "parse_args",
]

# The directory put on PYTHONPATH: it holds only sitecustomize.py.
SITECUSTOMIZE_DIR = os.path.join(os.path.dirname(os.path.realpath(__file__)), "sitecustomize")
# Set to our pid: the command (same pid after exec) treats a bad setting as fatal.
RUN_PID_VARIABLE = "OTEL_TDD_RUN_PID"

USAGE = (
    "usage: otel-tdd run [options] [--] COMMAND [ARGS...]\n"
    "       otel-tdd run [options] --list-instrumentations"
)
LIST_FLAG = "--list-instrumentations"


class Option:
    """A command-line option and the variable(s) it sets in the child's environment.

    (A plain class: dataclasses and typing would double this command's import time.)
    """

    __slots__ = ("flag", "help", "metavar", "variables")

    def __init__(self, flag: str, variables: tuple[str, ...], metavar: str, help: str) -> None:
        self.flag = flag
        self.variables = variables
        self.metavar = metavar
        self.help = help


OPTIONS: tuple[Option, ...] = (
    Option("--service-name", ("OTEL_SERVICE_NAME",), "NAME", "service.name of every signal"),
    Option(
        "--exporter",
        ("OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER"),
        "LIST",
        "otlp, console or none, for traces, metrics and logs; metrics keep the in-process "
        "prometheus reader in front, so the ops server's /metrics keeps working",
    ),
    Option(
        "--endpoint",
        ("OTEL_EXPORTER_OTLP_ENDPOINT",),
        "URL",
        "OTLP base URL, e.g. http://127.0.0.1:4318 (alone it turns OTLP on for all signals)",
    ),
    Option("--protocol", ("OTEL_EXPORTER_OTLP_PROTOCOL",), "PROTO", "http/protobuf or grpc"),
    Option(
        "--sampler",
        ("OTEL_TRACES_SAMPLER",),
        "NAME",
        "parentbased_always_on (default), traceidratio, parentbased_traceidratio, ...",
    ),
    Option("--sampler-arg", ("OTEL_TRACES_SAMPLER_ARG",), "RATIO", "ratio for *traceidratio"),
    Option(
        "--ops-port",
        ("OTEL_TDD_OPS_PORT",),
        "PORT",
        "start the ops server (/health, /health/live, /health/ready, /metrics) on this port",
    ),
    Option("--environment", ("OTEL_TDD_ENVIRONMENT",), "NAME", "deployment environment"),
    Option(
        "--disabled-instrumentations",
        ("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",),
        "LIST",
        "instrumentor entry-point names not to load (comma list; * for none at all)",
    ),
)
_BY_FLAG = {option.flag: option for option in OPTIONS}


class UsageError(Exception):
    """Bad command line; the message is printed after the usage line."""


def parse_args(argv: Sequence[str]) -> tuple[dict[str, str], list[str]] | None:
    """Split ``argv`` into (option values by flag, command). None: help was asked for.

    Our options come first; the first word that is not one of them starts the
    command, and everything after it is passed through untouched (``--`` also
    ends our options). Hand-written rather than argparse, whose REMAINDER still
    matches our own flags inside the command's arguments.
    """
    values: dict[str, str] = {}
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            index += 1
            break
        if arg in ("-h", "--help"):
            return None
        if arg == LIST_FLAG:
            values[LIST_FLAG] = ""
            index += 1
            continue
        if not arg.startswith("-"):
            break
        flag, has_value, value = arg.partition("=")
        option = _BY_FLAG.get(flag)
        if option is None:
            raise UsageError(f"unknown option {flag!r} (options go before the command)")
        if not has_value:
            index += 1
            if index >= len(argv):
                raise UsageError(f"{flag} needs a value ({option.metavar})")
            value = argv[index]
        values[flag] = value
        index += 1
    command = list(argv[index:])
    if not command and LIST_FLAG not in values:
        raise UsageError("no command given")
    return values, command


def _variable_values(option: Option, value: str) -> dict[str, str]:
    if option.flag != "--exporter":
        return dict.fromkeys(option.variables, value)
    names = [name.strip() for name in value.split(",") if name.strip()]
    # "prometheus" is the in-process reader behind /metrics, not an export: keep it.
    metrics = ["prometheus", *(name for name in names if name not in ("prometheus", "none"))]
    return {
        "OTEL_TRACES_EXPORTER": value,
        "OTEL_LOGS_EXPORTER": value,
        "OTEL_METRICS_EXPORTER": ",".join(metrics),
    }


def child_environment(values: Mapping[str, str], base: Mapping[str, str]) -> dict[str, str]:
    """The command's environment: ``base``, the options' variables, our PYTHONPATH entry."""
    env = dict(base)
    for flag, value in values.items():
        env.update(_variable_values(_BY_FLAG[flag], value))
    _prepend_path(env, "PYTHONPATH", SITECUSTOMIZE_DIR)
    env[RUN_PID_VARIABLE] = str(os.getpid())
    return env


def _prepend_path(env: MutableMapping[str, str], name: str, directory: str) -> None:
    entries = [entry for entry in env.get(name, "").split(os.pathsep) if entry]
    entries = [entry for entry in entries if os.path.abspath(entry) != directory]
    env[name] = os.pathsep.join([directory, *entries])


def _help() -> str:
    import textwrap

    from otel_tdd.config import KNOBS  # deferred: only --help needs the knob table

    lines = [
        USAGE,
        "",
        "Run COMMAND (python app.py, python -m pkg, or a console script such as streamlit,",
        "flask, gunicorn, uvicorn) with otel-tdd configured before any user code, the",
        "installed OpenTelemetry instrumentors loaded, stdlib logging as trace-correlated",
        "JSON, and the telemetry flushed on exit and SIGTERM. COMMAND replaces this process:",
        "signals, exit code and stdin/stdout/stderr are its own.",
        "",
        "options (each sets the standard variable shown; the environment works the same):",
    ]
    for option in OPTIONS:
        lines.append(f"  {option.flag} {option.metavar}")
        lines += textwrap.wrap(
            f"{', '.join(option.variables)}: {option.help}",
            width=88,
            initial_indent="      ",
            subsequent_indent="      ",
        )
    lines += [
        f"  {LIST_FLAG}",
        "      each installed instrumentor: ready (and the import that activates it), skipped",
        "      (library absent or unsupported, module failing: why), disabled or superseded",
        "  -h, --help",
        "      this text",
        "",
        "Every other OTEL_* variable the SDK documents works as documented (e.g.",
        "OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS, OTEL_BSP_SCHEDULE_DELAY).",
        "otel-tdd's own settings:",
    ]
    lines += [f"  {name:<36} {help_text}" for name, help_text in KNOBS.items()]
    lines += ["", "docs/auto-instrumentation.md has the details."]
    return "\n".join(lines)


def _which(command: str, path: str | None) -> str | None:
    """``shutil.which`` for POSIX, without its import of ``re`` (a quarter of our startup)."""
    if os.name != "posix":
        import shutil

        return shutil.which(command, path=path)

    def runnable(candidate: str) -> bool:
        return os.path.isfile(candidate) and os.access(candidate, os.X_OK)

    if os.sep in command:
        return command if runnable(command) else None
    for directory in (path if path is not None else os.defpath).split(os.pathsep):
        candidate = os.path.join(directory or os.curdir, command)
        if runnable(candidate):
            return candidate
    return None


def _exec(command: list[str], env: dict[str, str]) -> int:
    executable = _which(command[0], env.get("PATH"))
    if executable is None:
        print(f"otel-tdd run: command not found: {command[0]}", file=sys.stderr)
        return 127
    # argv[0] is the resolved path, as opentelemetry-instrument does: Python derives
    # sys.executable (and so its venv) from argv[0].
    argv = [executable, *command[1:]]
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name != "posix":  # no exec that keeps the pid: wait for a child instead
        import subprocess

        return subprocess.call(argv, env=env)
    try:
        os.execve(executable, argv, env)
    except OSError as error:
        print(f"otel-tdd run: cannot execute {executable}: {error.strerror}", file=sys.stderr)
        return 126
    raise AssertionError("unreachable: execve returned")  # pragma: no cover


def cli(argv: list[str]) -> int:
    """``otel-tdd run``; returns only on error (else the command replaced this process)."""
    try:
        parsed = parse_args(argv)
    except UsageError as error:
        print(f"{USAGE}\notel-tdd run: {error}", file=sys.stderr)
        return 2
    if parsed is None:
        print(_help())
        return 0
    values, command = parsed
    if LIST_FLAG in values:
        del values[LIST_FLAG]
        return _list_instrumentations(child_environment(values, os.environ))
    return _exec(command, child_environment(values, os.environ))


def _list_instrumentations(env: Mapping[str, str]) -> int:
    """Print what the command's bootstrap would do with each instrumentor, under ``env``."""
    # Deferred: the `otel-tdd run` parent only execs the command unless --list is given.
    from otel_tdd.auto import bootstrap
    from otel_tdd.auto.inventory import inventory, render
    from otel_tdd.config import ConfigError, load_settings

    disabled = env.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    try:
        settings = load_settings(environ=env)
    except ConfigError as error:
        print(f"otel-tdd run: {error}", file=sys.stderr)
        return 2
    superseded = {
        name for name, setting in bootstrap.SUPERSEDED.items() if getattr(settings, setting)
    }
    names = {name.strip() for name in disabled.split(",") if name.strip()}
    print(render(inventory(names, superseded)))
    return 0
