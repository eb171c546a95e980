"""when_imported: a hook runs once, right after the module's first import, and the module works."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

from otel_tdd._import_hooks import when_imported


def test_hook_runs_after_first_import_and_module_is_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "hooked_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("VALUE = 41\n")
    (package / "data.txt").write_text("resource")
    (tmp_path / "hooked_mod.py").write_text(textwrap.dedent("def f():\n    return 'source'\n"))
    monkeypatch.syspath_prepend(str(tmp_path))
    seen: list[ModuleType] = []

    def hook(module: ModuleType) -> None:
        module.VALUE += 1  # the module is fully executed when the hook runs
        seen.append(module)

    when_imported("hooked_pkg", hook)
    when_imported("hooked_mod", seen.append)
    assert seen == []
    package_module = importlib.import_module("hooked_pkg")
    assert package_module.VALUE == 42
    importlib.import_module("hooked_mod")
    assert [m.__name__ for m in seen] == ["hooked_pkg", "hooked_mod"]
    # The real loader still answers: resources and source code.
    from importlib.resources import files

    assert files("hooked_pkg").joinpath("data.txt").read_text() == "resource"
    import inspect

    assert "return 'source'" in inspect.getsource(sys.modules["hooked_mod"])
    # Once only: a reload does not run it again.
    importlib.reload(package_module)
    assert len(seen) == 2
    for name in ("hooked_pkg", "hooked_mod"):
        sys.modules.pop(name, None)


def test_hook_runs_at_once_for_a_module_already_imported() -> None:
    seen: list[str] = []
    when_imported("json", lambda module: seen.append(module.__name__))
    assert seen == ["json"]
