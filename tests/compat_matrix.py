"""The compatibility matrix, recorded by the tests that prove it (tests/compat/).

A compat test asks for the ``compat_row`` fixture and calls it once with the
library it ran, the scenario and what it proved. The row is kept only if the
test passed; at the end of the session the rows are written to
``build/compat-results.json`` and rendered as Markdown by ``render()``, which is
what docs/compatibility.md holds (regenerate with
``.venv/bin/python tests/compat_matrix.py``, after a run of tests/compat).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "build" / "compat-results.json"
DOC = REPO / "docs" / "compatibility.md"


# The instrumentation behind a library, where it is not opentelemetry-instrumentation-<library>.
INSTRUMENTATION: dict[str, tuple[str, ...]] = {
    "streamlit": ("otel-tdd",),  # none in the registry: ours, otel_tdd.integrations.streamlit
    "aiohttp": ("opentelemetry-instrumentation-aiohttp-server",),  # the web row; -client too
    "Celery": ("opentelemetry-instrumentation-celery",),
    "redis-py": ("opentelemetry-instrumentation-redis",),
    "SQLAlchemy": ("opentelemetry-instrumentation-sqlalchemy",),
    "SQLAlchemy + psycopg": (
        "opentelemetry-instrumentation-sqlalchemy",
        "opentelemetry-instrumentation-psycopg",
    ),
    "stdlib logging (otel-tdd guard)": ("otel-tdd",),  # otel_tdd/logging_guard.py
}
# Checked with `pip index versions --pre opentelemetry-instrumentation-X` (2026-12-02).
REGISTRY_GAPS = [
    "opentelemetry-instrumentation-streamlit: not in the registry; otel-tdd ships its own "
    "instrumentor (`otel_tdd.integrations.streamlit`, entry point `streamlit`).",
    "0.66b2, the newest contrib release, lacks starlette, urllib3, urllib, flask, "
    "aiohttp-client, aiohttp-server and psycopg: the whole set is pinned to 0.66b1 "
    "(with opentelemetry-api/sdk 1.45.1), the newest release at which every one exists.",
]


@dataclass
class Row:
    """One proven row: ``library`` at ``version`` in ``scenario`` shows each of ``proven``."""

    library: str
    scenario: str
    proven: list[str]
    version: str = ""
    test: str = ""
    notes: list[str] = field(default_factory=list)
    instrumentation: str = ""  # "distribution version" of the instrumentor that ran


def instrumentation_of(library: str) -> str:
    """The installed instrumentation distributions for ``library``, with their versions."""
    distributions = INSTRUMENTATION.get(library, (f"opentelemetry-instrumentation-{library}",))
    found = []
    for distribution in distributions:
        version = installed_version(distribution)
        if version == "not installed":
            return f"none ({distribution} not installed)"
        found.append(f"{distribution} {version}")
    return " + ".join(found)


def installed_version(distribution: str) -> str:
    """The installed version of ``distribution`` (a PyPI name), or "not installed"."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def save(rows: list[Row]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")


def render(rows: list[Row]) -> str:
    """Markdown: one table row per (library, scenario), sorted, proven claims listed."""
    lines = [
        "# Compatibility matrix",
        "",
        "Generated from a run of `tests/compat/` (`python tests/compat_matrix.py` renders",
        "`build/compat-results.json`); every row is a test that passed: the app ran unmodified,",
        "bare and under `otel-tdd run`, against the real Collector.",
        "",
        f"Core: opentelemetry-sdk {installed_version('opentelemetry-sdk')}, "
        f"opentelemetry-instrumentation {installed_version('opentelemetry-instrumentation')}; "
        f"Python {sys.version.split()[0]}.",
        "",
        "| library | version | instrumentation | scenario | proven | test |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in sorted(rows, key=lambda r: (r.library.lower(), r.scenario)):
        proven = "; ".join(row.proven + row.notes)
        lines.append(
            f"| {row.library} | {row.version} | {row.instrumentation or '?'} | {row.scenario} "
            f"| {proven} | `{row.test}` |"
        )
    lines += ["", "## Missing from the registry", ""]
    lines += [f"- {gap}" for gap in REGISTRY_GAPS]
    return "\n".join(lines) + "\n"


def main() -> int:
    if not RESULTS.is_file():
        hint = "run `.venv/bin/pytest tests/compat` first"
        print(f"no results at {RESULTS}: {hint}", file=sys.stderr)
        return 1
    rows = [Row(**r) for r in json.loads(RESULTS.read_text())]
    DOC.write_text(render(rows))
    print(f"wrote {DOC} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
