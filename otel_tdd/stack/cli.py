"""``otel-tdd stack up | down | status | logs | rebalance``: the stack from the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

from otel_tdd.stack import process
from otel_tdd.stack.assets import AssetError
from otel_tdd.stack.collectors import AGENT
from otel_tdd.stack.component import StackError
from otel_tdd.stack.config import (
    ENV_APP_TARGET,
    ENV_DIR,
    ENV_SECRETS_DIR,
    STACK_KNOBS,
    StackConfig,
    default_state_dir,
)
from otel_tdd.stack.local import LocalStack, agent_not_running
from otel_tdd.stack.private_files import UnsafePathError
from otel_tdd.stack.registry import COMPONENTS, CORE_COMPONENTS, is_known, kind_names
from otel_tdd.stack.resolver import READY_LINE, Resolver

__all__ = ["SLO_RULES_DEFAULT", "cli"]

SLO_RULES_DEFAULT = Path(".otel-tdd") / "slo" / "rules"  # `otel-tdd slo generate`'s output
_STORES = tuple(c for c in COMPONENTS if c not in CORE_COMPONENTS)


def _say(line: str) -> None:
    print(line, flush=True)


def _epilog() -> str:
    lines = ["environment:"]
    lines += [f"  {name:<32} {help_text}" for name, help_text in STACK_KNOBS.items()]
    return "\n".join(lines)


def _parse_port(text: str) -> tuple[str, int]:
    key, sep, value = text.partition("=")
    if not sep or not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected COMPONENT.NAME=PORT, got {text!r}")
    return key, int(value)


def _component_name(text: str) -> str:
    if is_known(text):
        return text
    raise argparse.ArgumentTypeError(
        f"unknown component {text!r}; choose from {', '.join(kind_names())}"
    )


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir", type=Path, help=f"state directory (default: ${ENV_DIR} or ./.otel-tdd/stack)"
    )
    parser = argparse.ArgumentParser(
        prog="otel-tdd stack",
        description="Run the Collector, Prometheus, Alertmanager and the trace and log stores "
        "(Jaeger, VictoriaLogs) as local processes, from collector/ and compose/, on 127.0.0.1.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_up(sub.add_parser("up", parents=[common], help="start the stack, wait until ready"))
    sub.add_parser("down", parents=[common], help="stop what `up` started")
    status = sub.add_parser("status", parents=[common], help="pid, health and URL per component")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    _add_rebalance(
        sub.add_parser(
            "rebalance",
            parents=[common],
            help="two-tier mode: route the agent to the gateways that still run (reloads it)",
        )
    )
    logs = sub.add_parser("logs", parents=[common], help="show a component's log")
    logs.add_argument("component", type=_component_name, help=", ".join(kind_names()))
    logs.add_argument("-n", "--lines", type=int, default=50, help="last N lines (default 50)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    return parser


def _add_up(up: argparse.ArgumentParser) -> None:
    up.add_argument("--free-ports", action="store_true", help="pick free ports, not the standard")
    up.add_argument(
        "--components",
        default=",".join(COMPONENTS),
        help=f"comma-separated subset of {','.join(COMPONENTS)} (default: all)",
    )
    up.add_argument(
        "--without-stores",
        action="store_true",
        help=f"leave out {' and '.join(_STORES)} (faster); the Collector then writes "
        "JSONL files (collector/files.yaml)",
    )
    up.add_argument(
        "--jsonl-files",
        action="store_true",
        help="the Collector writes traces/logs/metrics.jsonl under <dir>/collector/data "
        "(collector/files.yaml) instead of sending to the stores",
    )
    up.add_argument(
        "--port",
        action="append",
        type=_parse_port,
        default=[],
        metavar="COMPONENT.NAME=PORT",
        help="set one port, e.g. prometheus.web=19090 or collector.otlp_http=14318 (repeatable)",
    )
    up.add_argument("--app-target", help=f"HOST:PORT the `app` job scrapes (${ENV_APP_TARGET})")
    up.add_argument(
        "--secrets-dir", type=Path, help=f"Alertmanager secret files (${ENV_SECRETS_DIR})"
    )
    up.add_argument("--collector-config", type=Path, help="default: collector/config.yaml")
    up.add_argument(
        "--gateways",
        type=int,
        default=0,
        metavar="N",
        help="two-tier Collector: an agent (collector/agent.yaml) routing by trace id to N "
        "gateways (collector/gateway.yaml) instead of the single node (docs/scaling.md)",
    )
    up.add_argument(
        "--resolver-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="two-tier mode: how often the resolver process checks the gateways and routes "
        "the agent to those that answer (default 1; 0: no resolver, use `stack rebalance`)",
    )
    up.add_argument(
        "--rules-dir", type=Path, help="Prometheus rule files (default: compose/prometheus/rules)"
    )
    up.add_argument(
        "--slo-rules",
        type=Path,
        help=f"rules from `otel-tdd slo generate` (default: {SLO_RULES_DEFAULT} if it exists)",
    )
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait per component")


def _add_rebalance(rebalance: argparse.ArgumentParser) -> None:
    rebalance.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the agent to come back after a reload (default 60)",
    )
    rebalance.add_argument(
        "--watch",
        type=float,
        metavar="SECONDS",
        help="keep checking every SECONDS until Ctrl-C or the agent stops (what the "
        "resolver process of `up --gateways N` runs; a local stand-in for the k8s resolver)",
    )


def _print_urls(stack: LocalStack) -> None:
    urls = stack.labelled_urls()
    for url in urls:
        _say(f"  {url.label:<40} {url.url}")
    otlp_http = next((u.url for u in urls if u.key == "otlp_http"), None)
    if otlp_http:
        _say(f"send telemetry with: export OTEL_EXPORTER_OTLP_ENDPOINT={otlp_http}")


def _slo_rules(given: Path | None) -> Path | None:
    if given is not None:
        return given.resolve()
    return SLO_RULES_DEFAULT.resolve() if SLO_RULES_DEFAULT.is_dir() else None


def _components(args: argparse.Namespace) -> tuple[str, ...]:
    chosen = tuple(c.strip() for c in args.components.split(",") if c.strip())
    if args.without_stores:
        chosen = tuple(c for c in chosen if c not in _STORES)
    return chosen


def _cmd_up(args: argparse.Namespace) -> int:
    config = StackConfig.from_env(
        args.dir,
        components=_components(args),
        free_ports=args.free_ports,
        ports=dict(args.port),
        collector_config=args.collector_config.resolve() if args.collector_config else None,
        rules_dir=args.rules_dir.resolve() if args.rules_dir else None,
        slo_rules_dir=_slo_rules(args.slo_rules),
        start_timeout=args.timeout,
        gateways=args.gateways,
        resolver_interval=args.resolver_interval or None,
        jsonl_files=args.jsonl_files,
        **({"app_target": args.app_target} if args.app_target else {}),
        **({"secrets_dir": args.secrets_dir.resolve()} if args.secrets_dir else {}),
    )
    stack = LocalStack(config=config, progress=_say)
    stack.up()
    _print_urls(stack)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    stack = LocalStack(args.dir)
    rows = stack.status()
    if args.json:
        print(json.dumps([{**asdict(r), "log": str(r.log)} for r in rows], indent=2))
    else:
        print(f"{'COMPONENT':<13} {'PID':>7}  {'STATE':<8} {'HEALTH':<9} URL")
        for row in rows:
            health = "ready" if row.healthy else ("-" if row.state != "running" else "unready")
            print(
                f"{row.name:<13} {row.pid or '-':>7}  {row.state:<8} {health:<9} {row.url or '-'}"
            )
        print(f"state: {stack.state_dir}")
    return 0 if rows and all(r.state == "running" and r.healthy for r in rows) else 1


def _cmd_rebalance(args: argparse.Namespace) -> int:
    config = StackConfig(state_dir=default_state_dir(args.dir), start_timeout=args.timeout)
    stack = LocalStack(config=config, progress=_say)
    if args.watch is None:
        routes = stack.rebalance()
        _say(f"{AGENT:<13} routes to {', '.join(routes)}")
        return 0
    try:
        return _watch_gateways(stack, max(args.watch, 0.2))
    except KeyboardInterrupt:
        return 0


def _watch_gateways(stack: LocalStack, interval: float) -> int:
    """Rebalance every ``interval`` seconds until the agent stops; 0 then.

    A failed round is reported once and retried: a resolver that died on the
    first hiccup would leave the agent routing to a dead gateway, which is what
    it is there to prevent. An agent not running is an error at the start, and
    the end of the watch later.
    """
    if not stack.is_running(AGENT):
        raise agent_not_running()
    _say(f"{Resolver.kind:<13} {READY_LINE} every {interval:g}s for {stack.state_dir}")
    reported = ""
    while True:
        problem = ""
        try:
            stack.rebalance()
        except Exception as exc:  # a supervisor loop: any failed round is reported, then retried
            if not stack.is_running(AGENT):
                _say(f"{Resolver.kind:<13} {AGENT} is not running any more; stopping")
                return 0
            problem = str(exc) if isinstance(exc, StackError) else repr(exc)
        if problem and problem != reported:
            _say(f"{Resolver.kind:<13} {problem}; trying again every {interval:g}s")
        reported = problem
        time.sleep(interval)


def _cmd_logs(args: argparse.Namespace) -> int:
    log = LocalStack(args.dir).log_path(args.component)
    if not log.exists():
        print(f"otel-tdd stack: no log for {args.component} yet ({log})", file=sys.stderr)
        return 1
    sys.stdout.write(process.tail(log, args.lines))
    sys.stdout.flush()
    if not args.follow:
        return 0
    with log.open(encoding="utf-8", errors="replace") as fh:
        fh.seek(0, os.SEEK_END)
        try:
            while True:
                line = fh.readline()
                if line:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                else:
                    time.sleep(0.25)
        except KeyboardInterrupt:
            return 0


def cli(argv: list[str]) -> int:
    """``otel-tdd stack up | down | status | logs | rebalance``."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "up":
            return _cmd_up(args)
        if args.command == "down":
            LocalStack(args.dir, progress=_say).down()
            return 0
        if args.command == "status":
            return _cmd_status(args)
        if args.command == "rebalance":
            return _cmd_rebalance(args)
        return _cmd_logs(args)
    except (StackError, UnsafePathError, AssetError) as exc:
        print(f"otel-tdd stack: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli(sys.argv[1:]))
