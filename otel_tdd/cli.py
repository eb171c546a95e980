"""The ``otel-tdd`` command.

Subcommands are thin: each delegates to the module that owns the concern
(``stack.collector`` for ``collector``, ``stack`` for ``stack``, ``auto.run`` for
``run``), imported only when used so ``otel-tdd --help`` stays fast.
"""

from __future__ import annotations

import importlib
import sys

from otel_tdd.version import __version__

TYPE_CHECKING = False  # not typing's: importing typing costs more than this whole command
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence

__all__ = ["main"]

# name -> (module, function taking argv and returning an exit code, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("otel_tdd.auto.run", "cli", "run a command with zero-code instrumentation"),
    "collector": ("otel_tdd.stack.collector", "cli", "build, locate or validate our Collector"),
    "stack": ("otel_tdd.stack.cli", "cli", "start, watch and stop the local stack"),
    "stores": ("otel_tdd.stack.stores", "cli", "build or locate Jaeger and VictoriaLogs"),
    "trace": ("otel_tdd.stores_cli", "trace_cli", "show a trace with its log records"),
    "traces": ("otel_tdd.stores_cli", "traces_cli", "list a service's recent traces"),
    "logs": ("otel_tdd.stores_cli", "logs_cli", "query or follow log records (VictoriaLogs)"),
    "exemplars": ("otel_tdd.stores_cli", "exemplars_cli", "trace ids behind the slowest buckets"),
    "config": ("otel_tdd.cli", "show_config", "print the effective settings (validated)"),
    "slo": ("otel_tdd.slo_cli", "cli", "validate SLO specs; generate burn-rate rules and tests"),
}


def _epilog() -> str:
    from otel_tdd.config import KNOBS  # here, not at the top: `otel-tdd run` never needs it

    lines = ["otel-tdd's own settings (standard OTEL_* variables work as the SDK documents):"]
    lines += [f"  {name:<36} {help_text}" for name, help_text in KNOBS.items()]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    import argparse  # here: `otel-tdd run` never builds this parser

    parser = argparse.ArgumentParser(
        prog="otel-tdd",
        description="OpenTelemetry-native instrumentation distribution for Python.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"otel-tdd {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, _function, help_text) in SUBCOMMANDS.items():
        commands.add_parser(name, help=help_text, add_help=False)
    return parser


def show_config(argv: Sequence[str]) -> int:
    """``otel-tdd config``: validate the environment and print what configure() would use."""
    from dataclasses import asdict

    from otel_tdd.config import ConfigError, load_settings  # deferred: only this command needs it

    if argv:
        print("usage: otel-tdd config", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"otel-tdd: {error}", file=sys.stderr)
        return 2
    for key, value in asdict(settings).items():
        print(f"{key} = {value!r}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "--version"):
        _parser().parse_args(args or ["--help"])
        return 0
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        _parser().error(f"unknown command {name!r}: choose from {', '.join(SUBCOMMANDS)}")
    module_name, function_name, _help = SUBCOMMANDS[name]
    handler: Callable[[list[str]], int] = getattr(
        importlib.import_module(module_name), function_name
    )
    return handler(rest)


if __name__ == "__main__":
    raise SystemExit(main())
