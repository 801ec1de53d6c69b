"""History query latency on 30 days x 1,000,000 attempts (chdb), through the API's own queries.

Fills the attempts table with realistic days (3 % failures, 200k distinct orders a day, 500
rules of 500 accounts; see bench.fill), merges, then times each query the screen makes: the
median of several runs, after one warm-up run.
Usage: python -m bench.history [--days 30] [--per-day 1000000] [--runs 7] [--keep DIR]
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from analytics import queries, schema
from analytics.store import ChdbStore, ensure_schema
from bench.fill import Mix, fill_day
from bench.harness import say

TARGET_MS = 50.0
ORDER_TARGET_MS = 25.0
ACCOUNT_MS = 25.0  # issue 13: an account's summary, first page and order search


def fill(store: ChdbStore, days: int, mix: Mix) -> None:
    today = datetime.now(UTC).date()
    started = time.perf_counter()
    for back in range(days, 0, -1):
        store.command(fill_day(store.database, today - timedelta(days=back), mix))
        say(f"  day -{back:>2}: {time.perf_counter() - started:6.1f} s")
    say("merging ...")
    store.command(f"OPTIMIZE TABLE {store.database}.{schema.TABLE} FINAL")
    say(f"filled and merged in {time.perf_counter() - started:.0f} s")


def timed(run: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """Median milliseconds of `runs` calls after a warm-up, and the last result."""
    result = run()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        result = run()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), result


def deep_cursor(store: ChdbStore, period: queries.Period, depth: int) -> queries.Cursor:
    """The cursor after `depth` rows, reached by paging like the screen does."""
    cursor = None
    for _ in range(depth // queries.MAX_LIMIT):
        sql, params = queries.dispatches(
            store.database, period, limit=queries.MAX_LIMIT, cursor=cursor
        )
        rows = store.select(sql, params)
        last = rows[queries.MAX_LIMIT - 1]
        cursor = queries.Cursor(datetime.fromisoformat(last["dispatched_at"]), last["attempt_id"])
    assert cursor is not None
    return cursor


def measure(store: ChdbStore, runs: int) -> list[tuple[str, float, float, str]]:
    now = datetime.now(UTC)
    week = queries.Period(now - timedelta(days=7), now)
    month = queries.Period(now - timedelta(days=30), now)
    db = store.database
    [order] = store.select(
        f"SELECT order_id, account_id FROM {db}.{schema.TABLE} "
        "WHERE dispatched_at BETWEEN now() - INTERVAL 10 DAY AND now() - INTERVAL 3 DAY LIMIT 1"
    )
    order_id, account = order["order_id"], {"account_id": order["account_id"]}
    deep = deep_cursor(store, month, 1000)
    builders: list[tuple[str, tuple[str, dict[str, Any]], float]] = [
        ("summary, 7 days", queries.summary(db, week), TARGET_MS),
        ("summary, 30 days", queries.summary(db, month), TARGET_MS),
        ("failures by reason and rule, 7 days", queries.failure_breakdown(db, week), TARGET_MS),
        ("failures by reason and rule, 30 days", queries.failure_breakdown(db, month), TARGET_MS),
        ("first page (50 rows), 30 days", queries.dispatches(db, month), TARGET_MS),
        ("page 1,000 rows deep, 30 days", queries.dispatches(db, month, cursor=deep), TARGET_MS),
        ("failed tab first page, 30 days", queries.dispatches(db, month, "failure"), TARGET_MS),
        ("order search, 30 days", queries.dispatches(db, month, "all", order_id), ORDER_TARGET_MS),
        ("order summary, 30 days", queries.summary(db, month, order_id), ORDER_TARGET_MS),
        ("one account: summary, 30 days", queries.summary(db, month, **account), ACCOUNT_MS),
        ("one account: first page, 30 days", queries.dispatches(db, month, **account), ACCOUNT_MS),
        (
            "one account: failed tab, 30 days",
            queries.dispatches(db, month, "failure", **account),
            ACCOUNT_MS,
        ),
        (
            "one account: order search, 30 days",
            queries.dispatches(db, month, "all", order_id, **account),
            ACCOUNT_MS,
        ),
    ]
    cases: list[tuple[str, Callable[[], Any], float]] = [
        (name, functools.partial(store.select, *query), target) for name, query, target in builders
    ]
    out = []
    for name, run, target in cases:
        ms, result = timed(run, runs)
        out.append((name, ms, target, f"{len(result)} rows"))
        say(f"  {name}: {ms:.1f} ms")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7, help="timed runs per query (median)")
    parser.add_argument("--keep", type=Path, help="reuse/keep the chdb data in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="disparo-history-") as tmp:
        path = args.keep or Path(tmp)
        store = ChdbStore(path)
        ensure_schema(store)
        [have] = store.select(f"SELECT count() AS n FROM {store.database}.{schema.TABLE}")
        if int(have["n"]) == 0:
            say(f"filling {args.days} days x {args.per_day:,} attempts into {path} ...")
            fill(store, args.days, Mix(per_day=args.per_day))
        [have] = store.select(f"SELECT count() AS n FROM {store.database}.{schema.TABLE}")
        results = measure(store, args.runs)
        store.close()
    print(
        f"machine: {platform.node()} {platform.machine()} cpus={os.cpu_count()} "
        f"python={platform.python_version()} rows={int(have['n']):,}"
    )
    print(f"{'query':<42} | {'median ms':>9} | {'target':>6} | result")
    for name, ms, target, note in results:
        mark = "ok" if ms <= target else "MISSED"
        print(f"{name:<42} | {ms:>9.1f} | {target:>6.0f} | {note} {mark}")


if __name__ == "__main__":
    main()
