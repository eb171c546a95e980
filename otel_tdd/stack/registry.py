"""The component kinds the stack knows: adding one is a class and a line in ``KINDS``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from otel_tdd.stack.collectors import Agent, Collector, Gateway
from otel_tdd.stack.component import Component
from otel_tdd.stack.monitoring import Alertmanager, Prometheus
from otel_tdd.stack.resolver import Resolver
from otel_tdd.stack.store_components import Jaeger, VictoriaLogs

__all__ = [
    "COMPONENTS",
    "CORE_COMPONENTS",
    "KINDS",
    "component_for",
    "default_ports",
    "is_known",
    "kind_names",
    "listing_order",
    "members",
    "selectable",
    "start_order",
]

# In the order `up` lists their URLs; start and stop order come from each start_rank.
KINDS: tuple[type[Component], ...] = (
    Collector,
    Agent,
    Gateway,
    Prometheus,
    Alertmanager,
    Resolver,
    VictoriaLogs,
    Jaeger,
)


def selectable() -> tuple[str, ...]:
    """What `--components` may name (read from ``KINDS`` at each call)."""
    return tuple(kind.kind for kind in KINDS if kind.selectable)


# The default: every selectable component.
COMPONENTS: tuple[str, ...] = selectable()
# The stack without the stores: faster to start, the Collector writes JSONL files instead.
CORE_COMPONENTS: tuple[str, ...] = (Collector.kind, Prometheus.kind, Alertmanager.kind)


def _kind_of(name: str) -> type[Component] | None:
    return next((kind for kind in KINDS if kind.owns(name)), None)


def is_known(name: str) -> bool:
    """Whether ``name`` is a process the stack can run (``collector``, ``gateway-2``...)."""
    return _kind_of(name) is not None


def kind_names() -> list[str]:
    """Every process name pattern, for messages: ``collector, ..., gateway-N, resolver``."""
    return [*selectable(), *(k.name_pattern or k.kind for k in KINDS if not k.selectable)]


def component_for(name: str) -> Component:
    """The component that runs process ``name``."""
    kind = _kind_of(name)
    if kind is None:
        raise KeyError(name)
    return kind(name)


def default_ports(name: str) -> Mapping[str, int]:
    """The standard ports of process ``name`` ({} for an unknown one)."""
    kind = _kind_of(name)
    return kind(name).ports if kind is not None else {}


def _rank(component: Component) -> tuple[int, int, int]:
    order = next(i for i, kind in enumerate(KINDS) if isinstance(component, kind))
    return (component.start_rank, order, component.index)


def start_order(names: Iterable[str]) -> list[str]:
    """``names`` sorted for starting (stopping is the reverse)."""
    return [c.name for c in sorted(map(component_for, names), key=_rank)]


def members(names: Sequence[str]) -> list[Component]:
    """The components of ``names``, in start order."""
    return [component_for(name) for name in start_order(names)]


def listing_order(names: Iterable[str]) -> list[Component]:
    """The components of ``names`` in ``KINDS`` order, for URL lists."""
    return sorted(map(component_for, names), key=lambda c: (_rank(c)[1], c.index))
