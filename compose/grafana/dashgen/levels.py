"""Threshold steps the panels share, and the reasons panels give for having none.

Steps at an alert's threshold are AlertSteps: their value is read from the
alert rule. The numbers here are our own (no alert fires on them);
docs/dashboards.md gives the reasons.
"""

from __future__ import annotations

from .model import AlertStep

# "Any at all" for events that should not happen: one event in a 16-minute rate window
# is above it (0 is not: Grafana colours a value with the highest step <= it).
ANY_PER_S = 0.001

DB_QUERY_WARNING_S = 0.1  # a fifth of the 0.5 s response-time budget in one query
DB_QUERY_CRITICAL_S = 0.5  # one query alone spends the whole budget
SYNC_WARNING_S = 1.0
SYNC_CRITICAL_S = 5.0  # the example app syncs every 5 s: a longer sync falls behind
CPU_WARNING = 0.8  # share of a core (process) or of all cores (host)
CPU_CRITICAL = 0.95
HOST_MEMORY_CRITICAL_BYTES = 256 * 1024**2
HOST_MEMORY_WARNING_BYTES = 1024**3
FOCUS_SHORT_S = 600  # focus broken off within 10 minutes
FOCUS_LONG_S = 7200  # over 2 hours: most likely a timer left running
PRODUCTIVITY_LOW = 1.0  # tasks completed per focus hour

#: Orange and red where SlowResponseTime and HighResponseTime fire.
LATENCY_THRESHOLDS = (
    (None, "green"),
    AlertStep("SlowResponseTime", "orange"),
    AlertStep("HighResponseTime", "red"),
)
HEALTH_MAPPINGS = {
    "1": ("healthy", "green"),
    "0.5": ("warning", "orange"),
    "0": ("critical", "red"),
}
HEALTH_THRESHOLDS = ((None, "red"), (0.5, "orange"), (1, "green"))
# Business counts in the range: none at all is orange (nobody working, or nothing reported).
IDLE_THRESHOLDS = ((None, "orange"), (1, "green"))
PRODUCTIVITY_THRESHOLDS = ((None, "orange"), (PRODUCTIVITY_LOW, "green"))
CPU_THRESHOLDS = ((None, "green"), (CPU_WARNING, "orange"), (CPU_CRITICAL, "red"))

#: The reason for panels that show how much happens (traffic, users, business volume).
VOLUME = (
    "a volume: what is normal depends on the team and the hour, so it is read against "
    "its own history; the error, latency and drop panels carry the thresholds."
)
