"""Callables that ``otel_tdd/__init__`` registers for layers below the code they reach.

``_runtime.current()`` configures through ``autoconfigure``; ``lifecycle`` switches
the web servers' log forwarding (``otel_tdd.logs.framework``) through ``framework_logs``.
No imports: ``otel-tdd run`` and ``--help`` import the package (docs/benchmarks.md).
"""

TYPE_CHECKING = False  # not typing's: importing typing costs the command line more
if TYPE_CHECKING:
    from collections.abc import Callable

autoconfigure: "Callable[[], object] | None" = None
framework_logs: "Callable[[bool], None] | None" = None


def register(configure: "Callable[[], object]", forward: "Callable[[bool], None]") -> None:
    """``configure()`` with defaults, and the switch of framework log forwarding."""
    global autoconfigure, framework_logs
    autoconfigure, framework_logs = configure, forward


def set_framework_logs(enabled: bool) -> None:
    if framework_logs is not None:
        framework_logs(enabled)
