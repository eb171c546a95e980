"""The compatibility matrix, recorded by the tests that prove it (tests/compat/).

A compat test asks for the ``compat_row`` fixture and calls it once with the
library it ran, the scenario and what it proved. The row is kept only if the
test passed (setup, call and teardown); at the end of the session the rows, every
such test's outcome, the ids collected and the exit status are written to
``build/compat-results.json`` and rendered as Markdown by ``render()``, which is
what docs/compatibility.md holds (regenerate with
``.venv/bin/python tests/compat_matrix.py``, after a full run of tests/compat and
tests/e2e/test_streamlit_browser.py; it refuses a failed or partial run).
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
    "stdlib logging (otel-tdd guard)": ("otel-tdd",),  # otel_tdd/logs/guard.py
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


@dataclass
class Results:
    """What a session saves: its exit status, the ids of the tests asking for ``compat_row``
    that it collected, each one's outcome ("passed" only if setup, call and teardown
    passed) and the rows of the passed ones."""

    exitstatus: int
    collected: list[str]
    outcomes: dict[str, str]
    rows: list[Row]


def save(results: Results, path: Path = RESULTS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(results), indent=2) + "\n")


def load(path: Path = RESULTS) -> Results:
    data = json.loads(path.read_text())
    rows = [Row(**r) for r in data.pop("rows")]
    return Results(**data, rows=rows)


def row_sources(root: Path = REPO / "tests") -> set[str]:
    """The test files that record rows: a full run collects a test from each."""
    return {
        path.relative_to(REPO).as_posix()
        for path in root.rglob("test_*.py")
        if "compat_row(" in path.read_text()
    }


def refusals(results: Results, sources: set[str]) -> list[str]:
    """Why ``results`` must not become the doc (empty when it may): a test that did not
    pass, one collected but never run, a passed one without a row, a row file not run,
    or a session that did not exit 0."""
    problems = [f"{test}: {outcome}" for test, outcome in sorted(results.outcomes.items())
                if outcome != "passed"]  # fmt: skip
    problems += [f"{test}: collected, never ran" for test in results.collected
                 if test not in results.outcomes]  # fmt: skip
    with_rows = {row.test for row in results.rows}
    problems += [f"{test}: passed without recording a row"
                 for test, outcome in sorted(results.outcomes.items())
                 if outcome == "passed" and test not in with_rows]  # fmt: skip
    ran = {test.split("::")[0] for test in results.collected}
    problems += [f"{source}: not in this run (a partial run)" for source in sorted(sources - ran)]
    if results.exitstatus != 0:
        problems.append(f"the session exited {results.exitstatus}, not 0")
    return problems


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


def main(results_path: Path = RESULTS, doc: Path = DOC, sources: set[str] | None = None) -> int:
    """Render ``results_path`` into ``doc``; refuse (1, naming why) a failed or partial run."""
    hint = "run `.venv/bin/pytest tests/compat tests/e2e/test_streamlit_browser.py` first"
    if not results_path.is_file():
        print(f"no results at {results_path}: {hint}", file=sys.stderr)
        return 1
    results = load(results_path)
    problems = refusals(results, row_sources() if sources is None else sources)
    if problems:
        listed = "\n".join(f"  {p}" for p in problems)
        print(f"not rendering {doc}: {results_path} is not a full, passing run:\n{listed}\n"
              f"fix these and {hint}", file=sys.stderr)  # fmt: skip
        return 1
    doc.write_text(render(results.rows))
    print(f"wrote {doc} ({len(results.rows)} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
