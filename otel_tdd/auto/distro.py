"""Our ``opentelemetry_distro`` entry point, for plain ``opentelemetry-instrument``.

With otel-tdd installed, ``opentelemetry-instrument python app.py`` picks this
distro (set ``OTEL_PYTHON_DISTRO`` to choose among several) and our
configurator (:mod:`otel_tdd.auto.configurator`), so it gets the same defaults
as ``otel-tdd run``. The one behaviour changed from ``BaseDistro``: each
instrumentor activates when its library is imported (see
:func:`otel_tdd.auto.bootstrap.activate_on_import`), and the logging
instrumentor is left out while our JSON pipeline captures stdlib logging, since
it would export every record a second time.
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
