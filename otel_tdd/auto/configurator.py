"""Our ``opentelemetry_configurator`` entry point, for plain ``opentelemetry-instrument``.

``opentelemetry-instrument`` calls it after the distro and before loading the
instrumentors: it configures the process exactly as ``otel-tdd run`` does
(:func:`otel_tdd.auto.bootstrap.start`), minus the instrumentors, which
``opentelemetry-instrument`` loads itself through :class:`~otel_tdd.auto.distro.OtelTddDistro`.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk._configuration import _BaseConfigurator

from otel_tdd.auto import bootstrap

__all__ = ["OtelTddConfigurator"]


class OtelTddConfigurator(_BaseConfigurator):
    def _configure(self, **kwargs: Any) -> None:
        del kwargs  # auto_instrumentation_version: nothing to do with it
        bootstrap.start(instrument=False)
