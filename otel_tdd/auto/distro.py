"""Our ``opentelemetry_distro`` entry point, for plain ``opentelemetry-instrument``.

Design notes: docs/auto-instrumentation.md, "Implementation notes".
"""

from __future__ import annotations

from typing import Any

from opentelemetry.instrumentation.distro import (  # type: ignore[attr-defined]  # untyped module
    BaseDistro,
)

from otel_tdd import _runtime
from otel_tdd.auto import bootstrap
from otel_tdd.config import ConfigError, load_settings

__all__ = ["OtelTddDistro"]


def _capture_logging() -> bool:
    runtime = _runtime.RUNTIME
    if runtime is not None:
        return runtime.settings.capture_logging
    try:
        return load_settings().capture_logging
    except ConfigError:
        return True


class OtelTddDistro(BaseDistro):  # type: ignore[misc]  # untyped base class
    """Configuration lives in the configurator; this only decides how instrumentors load."""

    def _configure(self, **kwargs: Any) -> None:
        del kwargs  # otel-tdd reads everything from the environment

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        if entry_point.name in bootstrap.SUPERSEDED and _capture_logging():
            return
        # instrument() re-checks the instrumentor's dependencies when it activates.
        kwargs.pop("skip_dep_check", None)
        bootstrap.activate_on_import(entry_point, **kwargs)
