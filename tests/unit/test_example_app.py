"""The example app's cache and sync (examples/tdd_app.py): the dashboards' cache and sync
panels read what these produce, so they are tested like code, not only through the stack."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from otel_tdd.testing import Capture

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tdd_app.py"


@pytest.fixture(scope="module")
def tdd_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tdd_app_under_test", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_cache_counts_hits_and_misses_into_the_hit_ratio(
    tdd_app: ModuleType, otel_capture: Capture
) -> None:
    loads: list[int] = []

    def load(key: int) -> str:
        loads.append(key)
        if key == 404:
            raise LookupError(key)
        return f"epic {key}"

    cache = tdd_app.LookupCache("epics", load, size=2)
    assert [cache.get(k) for k in (1, 1, 2, 1)] == ["epic 1", "epic 1", "epic 2", "epic 1"]
    assert (cache.hits, cache.misses) == (2, 2)
    with pytest.raises(LookupError):
        cache.get(404)
    with pytest.raises(LookupError):
        cache.get(404)  # a failed load is not cached
    cache.get(3)  # evicts 2, the least recently used
    cache.get(2)
    assert loads == [1, 2, 404, 404, 3, 2]
    ratio = otel_capture.metric_value("tdd_cache_hit_ratio", {"cache": "epics"})
    assert ratio == pytest.approx(2 / 8)


def test_the_sync_pulls_done_tasks_pushes_everything_and_reports_healthy(
    tdd_app: ModuleType, otel_capture: Capture, tmp_path: Path
) -> None:
    path = tmp_path / "epics.json"
    app = tdd_app.App(sync_path=str(path))
    epic = app.epics.create_epic({"name": "Auth", "type": "web"})
    first, second = app.tasks.add_task(epic, "login"), app.tasks.add_task(epic, "logout")
    assert app.sync.status()["status"] == "warning"  # not synced yet

    assert app.sync.sync() == {"pulled": 0, "epics": 1, "tasks": 2}
    document: dict[str, Any] = json.loads(path.read_text())
    assert [t["done"] for t in document["tasks"]] == [False, False]

    document["tasks"][1]["done"] = True  # completed elsewhere
    path.write_text(json.dumps(document))
    assert app.sync.sync() == {"pulled": 1, "epics": 1, "tasks": 2}
    done = {t["id"]: t["done"] for t in json.loads(path.read_text())["tasks"]}
    assert done == {first: False, second: True}
    assert app.sync.status()["status"] == "healthy"
    assert otel_capture.metric_value("tdd_tasks_completed_total", {"project_type": "web"}) == 1
    assert otel_capture.metric_value("tdd_sync_duration_seconds", {"store": "file"}) == 2


@pytest.mark.parametrize("content", ["[]", '{"tasks": [{"done": true}]}', '{"tasks": 7}', "{"])
def test_a_malformed_sync_file_is_a_failed_sync_not_a_crash(
    tdd_app: ModuleType, otel_capture: Capture, tmp_path: Path, content: str
) -> None:
    path = tmp_path / "epics.json"
    path.write_text(content)
    app = tdd_app.App(sync_path=str(path))
    assert app.sync.sync() is None
    status = app.sync.status()
    assert status["status"] == "critical" and "Sync failed" in status["message"]
    assert otel_capture.metric_value("tdd_errors_total", {"type": "sync_failed"}) == 1
    assert [r["message"] for r in otel_capture.records() if r["level"] == "ERROR"] == [
        "Epic sync failed"
    ]

    path.unlink()  # the next good sync clears it
    assert app.sync.sync() is not None
    assert app.sync.status()["status"] == "healthy"
