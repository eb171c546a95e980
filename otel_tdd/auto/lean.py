"""Options the stock instrumentors document, chosen by ``otel-tdd run`` to make requests cheaper.

Each one drops per-request work that the HTTP semantic conventions do not ask
for; the server and client spans, their attributes and the duration metrics
stay the instrumentors' own, unchanged. Options passed by the caller (plain
``opentelemetry-instrument`` hands none) win. The figures are in
docs/benchmarks.md ("Lean options").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["LEAN_OPTIONS", "options_for"]

LEAN_OPTIONS: dict[str, dict[str, Any]] = {
    # The ASGI middleware opens an INTERNAL span per ASGI message besides the server span:
    # "GET /x http send" twice a response (start, body), "http receive" per request body
    # chunk. Each costs a span's creation, export and encoding, and none is in the HTTP
    # semantic conventions (the server span already carries status and duration).
    "fastapi": {"exclude_spans": ["receive", "send"]},
}


def options_for(name: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments for instrumentor ``name``'s ``instrument()``: ours, then ``given``."""
    return {**LEAN_OPTIONS.get(name, {}), **given}
