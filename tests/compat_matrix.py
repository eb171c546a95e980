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


@dataclass
class Row:
    """One proven row: ``library`` at ``version`` in ``scenario`` shows each of ``proven``."""

    library: str
    scenario: str
    proven: list[str]
    version: str = ""
    test: str = ""
    notes: list[str] = field(default_factory=list)


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
        "| library | version | scenario | proven | test |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in sorted(rows, key=lambda r: (r.library.lower(), r.scenario)):
        proven = "; ".join(row.proven + row.notes)
        lines.append(
            f"| {row.library} | {row.version} | {row.scenario} | {proven} | `{row.test}` |"
        )
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
