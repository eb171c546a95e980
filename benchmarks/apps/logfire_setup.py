"""Logfire set up as its docs show, but exporting over OTLP to our local Collector.

``send_to_logfire=False`` keeps it off its service; OTEL_EXPORTER_OTLP_ENDPOINT
(set by the benchmark) makes it export traces, metrics and logs there instead.
``console=False``: the other runs print no spans either. The app's stdlib log
records reach Logfire through its LoggingHandler, added after the app's own
``basicConfig`` (before it, basicConfig would do nothing).
"""

from __future__ import annotations

import logging

import logfire


def configure() -> None:
    logfire.configure(service_name="app-bench", send_to_logfire=False, console=False)


def add_log_handler() -> None:
    logging.getLogger().addHandler(logfire.LogfireLoggingHandler())
