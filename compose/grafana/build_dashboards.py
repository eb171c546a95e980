"""Generate the otel-tdd Grafana dashboards (compose/grafana/dashboards/*.json).

The dashboards are data in dashgen/ (rows of panel specs; thresholds at an alert
read from compose/prometheus/rules), rendered with grafana-foundation-sdk (a dev
dependency, pinned to its Grafana 11.6 build). Edit the specs, then regenerate:

    python compose/grafana/build_dashboards.py            # rewrite the JSON files
    python compose/grafana/build_dashboards.py --check    # exit 1 if they are stale
    python compose/grafana/build_dashboards.py --list-queries [--var NAME=VALUE ...]

`--list-queries` (and `panel_queries()`) reads the committed JSON, not the SDK;
docs/dashboards.md describes the dashboards and the conventions the tests check.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
DASHBOARDS_DIR = HERE / "dashboards"

#: Values for Grafana's variables when a query is run outside Grafana:
#: "all services and instances", and ranges long enough to hold several
#: samples at the stack's 5s scrape interval.
DEFAULT_SUBSTITUTIONS: dict[str, str] = {
    "service": ".*",
    "instance": ".*",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
}

# Grafana's variable syntaxes: $name, ${name}, ${name:format}, [[name]].
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")

_PACKAGE = "otel_tdd_grafana_dashgen"


def _load_dashgen() -> ModuleType:
    """dashgen/ as a package, by path: this file is itself run as a script or loaded
    by path (tests, otel_tdd.slo_cli), so its directory is not on sys.path."""
    directory = HERE / "dashgen"
    loaded = sys.modules.get(_PACKAGE)
    if loaded is not None and list(loaded.__path__) == [str(directory)]:
        return loaded
    for name in [n for n in sys.modules if n == _PACKAGE or n.startswith(f"{_PACKAGE}.")]:
        del sys.modules[name]  # another copy's (checkout vs wheel): its submodules too
    spec = importlib.util.spec_from_file_location(
        _PACKAGE, directory / "__init__.py", submodule_search_locations=[str(directory)]
    )
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules[_PACKAGE] = package
    spec.loader.exec_module(package)
    return package


_dashgen = _load_dashgen()
_render = importlib.import_module(f"{_PACKAGE}.render")
_slo = importlib.import_module(f"{_PACKAGE}.slo")
_model = importlib.import_module(f"{_PACKAGE}.model")
#: The alert rules' thresholds (dashgen/alert_rules.py), for tests and tools.
alert_rules = importlib.import_module(f"{_PACKAGE}.alert_rules")

#: file name -> dashboard spec (dashgen/__init__.py).
DASHBOARDS: dict[str, Any] = _dashgen.DASHBOARDS
#: Provisioned datasource uid (provisioning/datasources/prometheus.yml).
DATASOURCE_UID: str = _render.DATASOURCE_UID
#: The log store's datasource, type and uid (provisioning/datasources/stores.yml).
LOGS_DATASOURCE_TYPE: str = _render.LOGS_DATASOURCE_TYPE
LOGS_DATASOURCE_UID: str = _render.LOGS_DATASOURCE_UID
#: How a panel without thresholds says why, at the end of its description.
NO_THRESHOLD: str = _model.NO_THRESHOLD
_sdk = _render._sdk
_Builder = _render._Builder
slo_dashboard = _slo.slo_dashboard


def build_slo(service: str, objectives: Sequence[Mapping[str, Any]]) -> str:
    """The SLO dashboard's JSON text (what `otel-tdd slo generate` writes)."""
    return str(_render.to_json(slo_dashboard(service, objectives)))


def build_all() -> dict[str, str]:
    """File name -> the JSON text the generator produces for it."""
    return {name: str(_render.to_json(spec)) for name, spec in DASHBOARDS.items()}


def write_all(directory: Path = DASHBOARDS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in build_all().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale(directory: Path = DASHBOARDS_DIR) -> list[str]:
    """Names of committed files that differ from what the generator produces."""
    return [
        name
        for name, text in build_all().items()
        if not (directory / name).exists() or (directory / name).read_text(encoding="utf-8") != text
    ]


# --------------------------------------------------------------------------
# Reading the committed JSON (no SDK needed)
# --------------------------------------------------------------------------


def substitute(expr: str, substitutions: Mapping[str, str] | None = None) -> str:
    """Replace Grafana variables in a query; an unknown variable is an error."""
    values = {**DEFAULT_SUBSTITUTIONS, **(substitutions or {})}

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in values:
            raise KeyError(f"no substitution for Grafana variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def _panels(panels: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows nest panels


def panel_queries(
    directory: Path = DASHBOARDS_DIR,
    substitutions: Mapping[str, str] | None = None,
    datasource: str = DATASOURCE_UID,
) -> list[dict[str, Any]]:
    """Every panel query to ``datasource`` (a uid; default: Prometheus, so PromQL) of the
    committed dashboards, variables substituted.

    One dict per query: dashboard (file name), dashboard_uid, panel (title),
    panel_id, ref_id, expr (substituted) and raw_expr (as in the JSON).
    """
    queries = []
    for path in sorted(directory.glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for panel in _panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                if target.get("datasource", panel.get("datasource", {})).get("uid") != datasource:
                    continue
                queries.append(
                    {
                        "dashboard": path.name,
                        "dashboard_uid": dashboard.get("uid"),
                        "panel": panel.get("title"),
                        "panel_id": panel.get("id"),
                        "ref_id": target.get("refId"),
                        "raw_expr": target.get("expr"),
                        "expr": substitute(target.get("expr", ""), substitutions),
                    }
                )
    return queries


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if the JSON is stale")
    mode.add_argument("--list-queries", action="store_true", help="print every panel query as JSON")
    parser.add_argument(
        "--datasource",
        default=DATASOURCE_UID,
        help=f"with --list-queries: the datasource uid (default {DATASOURCE_UID}; "
        f"{LOGS_DATASOURCE_UID}: the LogsQL of the logs panels)",
    )
    parser.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="with --list-queries: override a variable substitution",
    )
    parser.add_argument("--dir", type=Path, default=DASHBOARDS_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.list_queries:
        overrides = dict(item.split("=", 1) for item in args.var)
        json.dump(panel_queries(args.dir, overrides, args.datasource), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if args.check:
        names = stale(args.dir)
        for name in names:
            print(f"stale: {args.dir / name} (run {Path(__file__).name})", file=sys.stderr)
        return 1 if names else 0
    for path in write_all(args.dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
