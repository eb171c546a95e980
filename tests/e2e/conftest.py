"""Fixtures of the live dashboard proofs (Prometheus and VictoriaMetrics): see dashboard_workload.

The ``stack`` fixture they build on is in ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from dashboard_workload import Workload, running_node_exporter, running_workload

if TYPE_CHECKING:
    from conftest import StackUnderTest


@pytest.fixture(scope="module")
def node_exporter(stack: StackUnderTest) -> Iterator[str]:
    """prometheus-node-exporter (Debian's, as in docker-compose), scraped by compose's job."""
    with running_node_exporter(stack) as address:
        yield address


@pytest.fixture(scope="module")
def workload(
    stack: StackUnderTest, node_exporter: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workload]:
    """The example app's demo once, then ``serve`` under load plus the rarer events."""
    with running_workload(stack, tmp_path_factory.mktemp("app"), "tdd-dash") as running:
        yield running
