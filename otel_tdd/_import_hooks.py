"""Run a callback right after a module is first imported: the package's one post-import hook.

wrapt has one too (``register_post_import_hook``), but importing wrapt pulls in
asyncio (~30 ms measured, 77 ms on a loaded machine with wrapt 2.5), a large part of
what ``otel-tdd run`` may add to start-up (docs/benchmarks.md); arming a hook needs
only a meta-path finder, so wrapt is paid for only when a hooked library is imported.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

__all__ = ["when_imported"]

Hook = Callable[[ModuleType], None]


class _HookedLoader(Loader):
    """Delegates to the real loader, then runs the hooks on the fresh module."""

    def __init__(self, loader: Loader, hooks: list[Hook]) -> None:
        self._loader = loader
        self._hooks = hooks

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        for hook in self._hooks:
            hook(module)

    def __getattr__(self, name: str) -> Any:
        # get_source, get_resource_reader, is_package ...: the real loader answers.
        return getattr(self._loader, name)


class _PostImportFinder(MetaPathFinder):
    def __init__(self) -> None:
        self.hooks: dict[str, list[Hook]] = {}
        self._lock = threading.Lock()
        self._searching = threading.local()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self.hooks or getattr(self._searching, "name", None) == fullname:
            return None
        self._searching.name = fullname
        try:
            spec = _find_with_others(self, fullname, path, target)
        finally:
            self._searching.name = None
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        with self._lock:
            hooks = self.hooks.pop(fullname, [])
        if hooks:
            spec.loader = _HookedLoader(spec.loader, hooks)
        return spec


def _find_with_others(
    me: MetaPathFinder, fullname: str, path: Sequence[str] | None, target: ModuleType | None
) -> ModuleSpec | None:
    for finder in sys.meta_path:
        if finder is me:
            continue
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        spec: ModuleSpec | None = find_spec(fullname, path, target)
        if spec is not None:
            return spec
    return None


_finder: _PostImportFinder | None = None
_install_lock = threading.Lock()


def when_imported(module: str, hook: Hook) -> None:
    """Call ``hook(module)`` once ``module`` is imported; at once if it already is."""
    global _finder
    loaded = sys.modules.get(module)
    if loaded is not None:
        hook(loaded)
        return
    with _install_lock:
        if _finder is None:
            _finder = _PostImportFinder()
            sys.meta_path.insert(0, _finder)
        _finder.hooks.setdefault(module, []).append(hook)
