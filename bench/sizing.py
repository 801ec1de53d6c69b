"""Bytes per attempt row on realistic data: what a day of history costs on disk.

Usage: python -m bench.sizing [--rows N]   (chdb in a temporary folder)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from analytics.history import schema
from analytics.history.store import ChdbStore, ensure_schema
from bench.fill import Mix, fill_day
from bench.harness import say


def measure(store: ChdbStore, rows: int) -> dict[str, float]:
    """Fill one day, merge it, and read the on-disk sizes."""
    day = (datetime.now(UTC) - timedelta(days=1)).date()
    started = time.perf_counter()
    store.command(fill_day(store.database, day, Mix(per_day=rows, orders=rows // 5)))
    say(f"filled {rows:,} rows in {time.perf_counter() - started:.1f} s; merging")
    store.command(f"OPTIMIZE TABLE {store.database}.{schema.TABLE} FINAL")
    [parts] = store.select(
        "SELECT sum(rows) AS rows, sum(bytes_on_disk) AS disk, "
        "sum(data_uncompressed_bytes) AS raw FROM system.parts "
        f"WHERE database = '{store.database}' AND table = '{schema.TABLE}' AND active"
    )
    return {k: float(v) for k, v in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="attempts in the day")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="disparo-sizing-") as tmp:
        store = ChdbStore(Path(tmp))
        ensure_schema(store)
        sizes = measure(store, args.rows)
        columns = store.select(
            "SELECT name, sum(data_compressed_bytes) AS disk FROM system.columns "
            f"WHERE database = '{store.database}' AND table = '{schema.TABLE}' "
            "GROUP BY name ORDER BY disk DESC LIMIT 6"
        )
        store.close()
    per_row = sizes["disk"] / sizes["rows"]
    print(f"rows                 {sizes['rows']:>14,.0f}")
    print(f"on disk              {sizes['disk'] / 2**20:>12,.1f} MiB")
    print(f"uncompressed         {sizes['raw'] / 2**20:>12,.1f} MiB")
    print(f"bytes per attempt    {per_row:>14,.1f}")
    print(f"attempts per GiB     {2**30 / per_row:>14,.0f}")
    print(f"30 days at 1M/day    {30e6 * per_row / 2**30:>12,.2f} GiB per replica")
    print("largest columns:")
    for c in columns:
        print(f"  {c['name']:<18} {float(c['disk']) / sizes['rows']:>8.1f} bytes/row")


if __name__ == "__main__":
    main()
