"""Where the query commands find Jaeger, VictoriaLogs and Prometheus.

A flag wins, then ``OTEL_TDD_JAEGER_URL``/``_LOGS_URL``/``_PROMETHEUS_URL``,
then the local stack's component when ``otel-tdd stack up`` runs it (its state
directory as ``otel-tdd stack`` finds it: ``$OTEL_TDD_STACK_DIR``, else
``./.otel-tdd/stack``), then the ports compose publishes on 127.0.0.1.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from otel_tdd.stack.component import StackError
from otel_tdd.stack.config import default_state_dir
from otel_tdd.stack.view import StackView
from otel_tdd.store_http import DEFAULT_URLS, ENV_JAEGER_URL, ENV_LOGS_URL, ENV_PROMETHEUS_URL

__all__ = ["STACK_COMPONENTS", "resolve_url", "stack_url"]

# Each store's variable -> (the stack component that runs it, its key in StackView.urls).
STACK_COMPONENTS: Mapping[str, tuple[str, str]] = {
    ENV_JAEGER_URL: ("jaeger", "jaeger"),
    ENV_LOGS_URL: ("victoria-logs", "victoria_logs"),
    ENV_PROMETHEUS_URL: ("prometheus", "prometheus"),
}


def stack_url(env_name: str, state_dir: Path | str | None = None) -> str | None:
    """The store's URL in the local stack when that stack runs it now, else None."""
    component, key = STACK_COMPONENTS[env_name]
    try:
        view = StackView(state_dir)
        if not view.is_running(component):
            return None
        return view.urls.get(key)
    except (StackError, OSError):
        # An unreadable state dir is not this command's concern: `otel-tdd stack status`
        # reports it; the query falls back to the compose default and says how to start.
        return None


def resolve_url(
    flag: str | None,
    env_name: str,
    *,
    environ: Mapping[str, str] | None = None,
    state_dir: Path | str | None = None,
) -> str:
    """``flag``, else ``$env_name``, else the running local stack's, else compose's port."""
    env = os.environ if environ is None else environ
    chosen = (
        flag
        or env.get(env_name)
        or stack_url(env_name, default_state_dir(state_dir, env))
        or DEFAULT_URLS[env_name]
    )
    return chosen.rstrip("/")
