"""The otel-tdd Grafana dashboards as data (rows of panel specs), and their renderer.

Loaded by path from ../build_dashboards.py, which writes the JSON files.
"""

from __future__ import annotations

from .business import BUSINESS
from .model import Dashboard
from .overview import OVERVIEW
from .performance import PERFORMANCE
from .security import SECURITY

#: file name -> dashboard. The file names are part of the interface
#: (GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH points at overview.json).
DASHBOARDS: dict[str, Dashboard] = {
    "overview.json": OVERVIEW,
    "performance.json": PERFORMANCE,
    "business.json": BUSINESS,
    "security.json": SECURITY,
}
