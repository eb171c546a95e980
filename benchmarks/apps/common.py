"""What every benchmark app's endpoint shares: the SQLite row and the stub's URL.

The benchmark (benchmarks/app_overhead.py) passes both through the environment,
as a deployment would; the apps themselves stay plain, uninstrumented code.
"""

from __future__ import annotations

import os
import sqlite3

DB_PATH = os.environ.get("BENCH_DB", "bench.sqlite3")
STUB_URL = os.environ.get("BENCH_STUB_URL", "http://127.0.0.1:9/price")


def read_item(item_id: int) -> tuple[int, str, float] | None:
    """One row by primary key, on a fresh connection (what a small app without a pool does)."""
    with sqlite3.connect(DB_PATH) as conn:
        row = conn.execute("SELECT id, name, price FROM items WHERE id = ?", (item_id,)).fetchone()
    return None if row is None else (int(row[0]), str(row[1]), float(row[2]))
