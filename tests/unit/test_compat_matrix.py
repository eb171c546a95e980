"""tests/compat_matrix.py renders docs/compatibility.md only from a full, passing run.

Pure: hand-made results, files in tmp_path, no processes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from compat_matrix import Results, Row, main, refusals, save

SOURCES = {"tests/compat/test_a.py", "tests/compat/test_b.py"}
A, B = "tests/compat/test_a.py::test_a", "tests/compat/test_b.py::test_b"


def passing() -> Results:
    rows = [Row("liba", "sync", ["works"], test=A), Row("libb", "async", ["works"], test=B)]
    return Results(0, [A, B], {A: "passed", B: "passed"}, rows)


def test_a_full_passing_run_is_rendered(tmp_path: Path) -> None:
    results, doc = tmp_path / "results.json", tmp_path / "compatibility.md"
    save(passing(), results)
    assert refusals(passing(), SOURCES) == []
    assert main(results, doc, SOURCES) == 0
    text = doc.read_text()
    assert f"`{A}`" in text and f"`{B}`" in text


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda r: r.outcomes.update({B: "failed"}), f"{B}: failed"),
        (lambda r: r.outcomes.update({B: "skipped"}), f"{B}: skipped"),
        (lambda r: r.outcomes.pop(B), f"{B}: collected, never ran"),
        (lambda r: setattr(r, "rows", r.rows[:1]), f"{B}: passed without recording a row"),
        (lambda r: setattr(r, "exitstatus", 2), "exited 2"),
        (
            lambda r: (r.collected.remove(B), r.outcomes.pop(B), r.rows.pop()),
            "tests/compat/test_b.py: not in this run",
        ),
    ],
    ids=["failed", "skipped", "never-ran", "no-row", "exit-status", "partial"],
)
def test_a_failed_or_partial_run_is_refused_naming_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: object, named: str
) -> None:
    results = passing()
    change(results)  # type: ignore[operator]
    assert any(named in problem for problem in refusals(results, SOURCES)), refusals(
        results, SOURCES
    )
    path, doc = tmp_path / "results.json", tmp_path / "compatibility.md"
    doc.write_text("the last good matrix\n")
    save(results, path)
    assert main(path, doc, SOURCES) == 1
    assert named in capsys.readouterr().err
    assert doc.read_text() == "the last good matrix\n"  # untouched


def test_no_results_is_refused(tmp_path: Path) -> None:
    assert main(tmp_path / "missing.json", tmp_path / "doc.md", SOURCES) == 1
    assert not (tmp_path / "doc.md").exists()
