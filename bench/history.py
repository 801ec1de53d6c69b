"""History query latency on 30 days x 1,000,000 attempts (chdb), through the API's own queries.

Fills the attempts table with realistic days (3 % failures, 200k distinct orders a day, 500
rules of 500 accounts; see bench.fill) and the events table with the events behind them,
merges, then times each query the screen makes (history, order coverage, dry runs): the
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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from analytics.history import event_queries, queries, schema
from analytics.history.event_queries import RuleScope
from analytics.history.store import ChdbStore, ensure_schema
from bench.fill import Mix, fill_day, fill_events_day
from bench.harness import say
from disparo.filters import FilterSpec

TARGET_MS = 50.0
ORDER_TARGET_MS = 25.0
ACCOUNT_MS = 25.0  # issue 13: an account's summary, first page and order search
UNDELIVERED_MS = 200.0  # issue 15: undelivered orders of 7 days
DRY_RUN_MS = 500.0  # issue 15: a dry run over 30 days


@dataclass(frozen=True)
class BenchRule:
    """A rule as the coverage queries read it."""

    account_id: str
    event_types: list[str]
    filters: dict[str, FilterSpec]


def bench_rules(mix: Mix) -> list[RuleScope]:
    """The filled data's rules: rule 60000+r of account acct-<r % accounts>, every event type."""
    return [
        RuleScope(60000 + r, BenchRule(f"acct-{r % mix.accounts}", ["*"], {}))
        for r in range(mix.rules)
    ]


def fill(store: ChdbStore, days: int, mix: Mix, table: str = schema.TABLE) -> None:
    today = datetime.now(UTC).date()
    started = time.perf_counter()
    day_of = fill_day if table == schema.TABLE else fill_events_day
    for back in range(days, 0, -1):
        store.command(day_of(store.database, today - timedelta(days=back), mix))
        say(f"  {table} day -{back:>2}: {time.perf_counter() - started:6.1f} s")
    say(f"merging {table} ...")
    store.command(f"OPTIMIZE TABLE {store.database}.{table} FINAL")
    if table == schema.EVENTS_TABLE:  # and the search values its view filed
        store.command(f"OPTIMIZE TABLE {store.database}.{schema.SEARCH_TABLE} FINAL")
    say(f"{table} filled and merged in {time.perf_counter() - started:.0f} s")


def coverage_cases(
    store: ChdbStore, mix: Mix
) -> list[tuple[str, tuple[str, dict[str, Any]], float]]:
    """Issue 15's queries: undelivered orders (7 days) and dry runs (30 days)."""
    now = datetime.now(UTC)
    week = queries.Period(now - timedelta(days=7), now)
    month = queries.Period(now - timedelta(days=30), now)
    db, rules = store.database, bench_rules(mix)
    one = [rules[7]]
    account = one[0].fields.account_id
    carrier = BenchRule(account, ["order.dispatched"], {"payload.carrier": ["Loggi", "Jadlog"]})
    undelivered = functools.partial(event_queries.undelivered, db, week)
    dry_run = functools.partial(event_queries.dry_run, db, month)
    return [
        ("undelivered, one account, 7 days", undelivered(one, 50, None, account), UNDELIVERED_MS),
        ("undelivered, one rule, 7 days", undelivered(one, 50), UNDELIVERED_MS),
        ("undelivered, all 500 rules, 7 days", undelivered(rules, 50), UNDELIVERED_MS),
        ("dry run, every type, 30 days", dry_run(one[0].fields), DRY_RUN_MS),
        ("dry run, one type + filter, 30 days", dry_run(carrier), DRY_RUN_MS),
    ]


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


def key_search(store: ChdbStore, period: queries.Period, value: str, account: str) -> list[Any]:
    """What `GET /dispatches?key=` runs: the orders the value names, then their page."""
    sql, params = queries.orders_with_key(store.database, value, account)
    orders = tuple(dict.fromkeys([value, *(str(r["order_id"]) for r in store.select(sql, params))]))
    page = queries.dispatches(store.database, period, "all", orders, account_id=account)
    return store.select(*page)


def measure(store: ChdbStore, runs: int, mix: Mix) -> list[tuple[str, float, float, str]]:
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
    builders += coverage_cases(store, mix)
    cases: list[tuple[str, Callable[[], Any], float]] = [
        (name, functools.partial(store.select, *query), target) for name, query, target in builders
    ]
    [code] = store.select(
        "SELECT fields['payload.tracking_code'] AS code, account_id "
        f"FROM {db}.{schema.EVENTS_TABLE} WHERE order_id = {{o:String}} LIMIT 1",
        {"o": order_id},
    )
    search = functools.partial(key_search, store, month, code["code"], code["account_id"])
    cases.append(("one account: search key (tracking code), 30 days", search, ACCOUNT_MS))
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
        mix = Mix(per_day=args.per_day)
        for table in (schema.TABLE, schema.EVENTS_TABLE):
            [have] = store.select(f"SELECT count() AS n FROM {store.database}.{table}")
            if int(have["n"]) == 0:
                say(f"filling {args.days} days x {args.per_day:,} rows of {table} into {path} ...")
                fill(store, args.days, mix, table)
        [have] = store.select(f"SELECT count() AS n FROM {store.database}.{schema.TABLE}")
        [events] = store.select(f"SELECT count() AS n FROM {store.database}.{schema.EVENTS_TABLE}")
        results = measure(store, args.runs, mix)
        store.close()
    print(
        f"machine: {platform.node()} {platform.machine()} cpus={os.cpu_count()} "
        f"python={platform.python_version()} rows={int(have['n']):,} events={int(events['n']):,}"
    )
    print(f"{'query':<42} | {'median ms':>9} | {'target':>6} | result")
    for name, ms, target, note in results:
        mark = "ok" if ms <= target else "MISSED"
        print(f"{name:<42} | {ms:>9.1f} | {target:>6.0f} | {note} {mark}")


if __name__ == "__main__":
    main()
