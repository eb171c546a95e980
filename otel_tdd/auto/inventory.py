"""``otel-tdd run --list-instrumentations``: each installed instrumentor and its fate.

What ``otel-tdd run`` would do with each ``opentelemetry_instrumentor`` entry
point, decided as the bootstrap decides it, without running the program:
disabled (``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``), superseded by otel-tdd
itself, skipped (its library is absent or of a version it does not support, or
its module fails to import) or ready, with the import that activates it. A
skipped one is a non-event at run time (one debug record); this is where the
reason can be read.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from otel_tdd.auto import bootstrap

__all__ = ["Instrumentation", "inventory", "render"]


@dataclass(frozen=True)
class Instrumentation:
    """One entry point: its distribution, what happens to it, and why."""

    name: str
    distribution: str
    state: str  # "ready", "skipped", "disabled" or "superseded"
    reason: str


def _distribution(entry_point: EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return "?"
    return f"{dist.metadata['Name']} {dist.version}"


def _conflict(entry_point: EntryPoint) -> str | None:
    """Why the instrumentor cannot apply here (library absent or unsupported), if so."""
    from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

    dist: Any = getattr(entry_point, "dist", None)
    if dist is not None:
        conflict = get_dist_dependency_conflicts(dist)
        if conflict is not None:
            return str(conflict)
    try:
        instrumentor = entry_point.load()()
        conflict = instrumentor._check_dependency_conflicts()
    except Exception as error:  # its module does not import: skipped at run time too
        return f"failed to load: {error!r}"
    return None if conflict is None else str(conflict)


def inventory(disabled: set[str], superseded: set[str]) -> list[Instrumentation]:
    """Every installed instrumentor, as the bootstrap would treat it."""
    rows = []
    for entry_point in entry_points().select(group="opentelemetry_instrumentor"):
        name = entry_point.name
        dist = _distribution(entry_point)
        if "*" in disabled or name in disabled:
            rows.append(
                Instrumentation(name, dist, "disabled", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS")
            )
            continue
        if name in superseded:
            rows.append(
                Instrumentation(name, dist, "superseded", "otel-tdd's own JSON log pipeline")
            )
            continue
        conflict = _conflict(entry_point)
        if conflict is not None:
            rows.append(Instrumentation(name, dist, "skipped", conflict))
            continue
        module = bootstrap.trigger(entry_point)
        if name in bootstrap.AFTER_CALL:
            when = f"activates after {module}.{bootstrap.AFTER_CALL[name][1]}()"
        else:
            when = "activates at start" if module is None else f"activates on import of {module}"
        rows.append(Instrumentation(name, dist, "ready", when))
    return sorted(rows, key=lambda row: row.name)


def render(rows: list[Instrumentation]) -> str:
    """A plain table, one instrumentor a line."""
    if not rows:
        return (
            "no OpenTelemetry instrumentors installed (pip install opentelemetry-instrumentation-X)"
        )
    width = max(len(row.name) for row in rows)
    dist_width = max(len(row.distribution) for row in rows)
    lines = [f"{'NAME':<{width}}  {'DISTRIBUTION':<{dist_width}}  {'STATE':<10}  WHY"]
    lines += [
        f"{row.name:<{width}}  {row.distribution:<{dist_width}}  {row.state:<10}  {row.reason}"
        for row in rows
    ]
    return "\n".join(lines)
