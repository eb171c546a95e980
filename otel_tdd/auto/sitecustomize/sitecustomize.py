"""Run by Python at startup in every process that ``otel-tdd run`` starts.

Design notes: docs/auto-instrumentation.md, "Implementation notes".
"""

from __future__ import annotations

import os
import sys


def _run_shadowed_sitecustomize() -> None:
    import importlib.machinery

    me = os.path.realpath(__file__)
    here = os.path.dirname(me)
    rest = [entry for entry in sys.path if os.path.realpath(entry or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    if spec.origin and os.path.realpath(spec.origin) == me:
        return  # ourselves again, under another spelling of the path
    import importlib.util

    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # what site.py itself does with a failing sitecustomize
        print(f"Error in sitecustomize ({spec.origin}): {error!r}", file=sys.stderr)


def _start() -> None:
    try:
        from otel_tdd.auto.bootstrap import start  # deferred: a missing otel_tdd is reported
    except ImportError as error:
        print(
            f"otel-tdd: {sys.executable} cannot import otel_tdd ({error}); "
            "running without instrumentation. Run the Python that has otel-tdd installed.",
            file=sys.stderr,
        )
        return
    start()


_run_shadowed_sitecustomize()
_start()
