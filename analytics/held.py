"""Held dispatches of paused rules: counted, released oldest first at the rule's rate, discarded.

A held row is a dispatch the worker kept instead of sending (status `held`). What became of
it is a row of `held_actions`; a row without one is still held. Releasing publishes the
dispatch's job again (not manual: it is the dispatch itself, late) and then notes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter

from analytics import schema
from analytics.periodic import Periodic
from analytics.queries import TS_TYPE, ts_param
from analytics.store import Store
from disparo.reasons import DISCARDED
from disparo.rules_view import RulesView
from disparo.schemas import (
    AttemptOutcome,
    DispatchJob,
    OrderEvent,
    Rule,
    RuleRef,
    attempt_id_for,
    now_utc,
)

log = logging.getLogger(__name__)
RELEASED = Counter("disparo_held_released_total", "Held dispatches released after an unpause.")
DISCARDED_HELD = Counter(
    "disparo_held_discarded_total", "Held dispatches discarded, by why.", ["why"]
)
TICK_S = 0.1
SCAN_EVERY_S = 1.0  # how often the held backlog (and gone endpoints) are looked up
EXPIRE_EVERY_S = 600.0
GONE_LOOKBACK = timedelta(minutes=10)  # 410 answers looked at (the sink stores them in seconds)
# Discarded a day before the history's TTL would take them silently.
KEEP_HELD = timedelta(days=schema.RETENTION_DAYS - 1)
_COLUMNS = (
    "attempt_id, dispatch_id, attempt, order_id, order_status, event_id, event_type, rule_id, "
    "url, account_id, toUnixTimestamp64Milli(dispatched_at) AS held_ms, event_json"
)


def _pending(database: str, extra: str = "") -> str:
    """A rule's held rows not yet acted on (and matching `extra`, a condition on the rows)."""
    table, actions = f"{database}.{schema.TABLE}", f"{database}.{schema.HELD_TABLE}"
    rule = "rule_id = {rule:UInt64}"
    return (
        f"FROM {table} WHERE status = 'held' AND dispatched_at >= {{since:{TS_TYPE}}} AND {rule}"
        f"{extra} AND attempt_id NOT IN (SELECT attempt_id FROM {actions} WHERE {rule} "
        f"AND held_at >= {{since:{TS_TYPE}}})"
    )


def held_counts(store: Store, now: datetime, rule_id: int | None = None) -> dict[int, int]:
    """Dispatches still held, per rule (of one rule when given): held rows less those acted on.

    Both counts are per hour of holding, so the held rows are counted from the attempts
    table's hourly projection, never by reading the rows of 30 days.
    """
    where = "rule_id = {rule:UInt64}" if rule_id is not None else "1"
    since = f"toStartOfHour({{since:{TS_TYPE}}})"
    held_sql = (
        f"SELECT rule_id AS rule, count() AS n FROM {store.database}.{schema.TABLE} "
        f"WHERE status = 'held' AND toStartOfHour(dispatched_at) >= {since} AND {where} "
        "GROUP BY rule_id"
    )
    acted_sql = (
        f"SELECT rule_id AS rule, count() AS n FROM {store.database}.{schema.HELD_TABLE} "
        f"WHERE toStartOfHour(held_at) >= {since} AND {where} GROUP BY rule_id"
    )
    params = {"since": ts_param(now - timedelta(days=schema.RETENTION_DAYS)), "rule": rule_id or 0}
    held = {int(r["rule"]): int(r["n"]) for r in store.select(held_sql, params)}
    for row in store.select(acted_sql, params):
        rule = int(row["rule"])
        held[rule] = held.get(rule, 0) - int(row["n"])
    return {rule: n for rule, n in held.items() if n > 0}


def oldest_held(
    store: Store, rule_id: int, now: datetime, limit: int, before: datetime | None = None
) -> list[dict[str, Any]]:
    """A rule's held rows, oldest first (only those held before `before`, when given)."""
    extra = ""
    params: dict[str, Any] = {
        "since": ts_param(now - timedelta(days=schema.RETENTION_DAYS)), "rule": rule_id,
    }  # fmt: skip
    if before is not None:
        extra = f" AND dispatched_at < {{before:{TS_TYPE}}}"
        params["before"] = ts_param(before)
    sql = (
        f"SELECT {_COLUMNS} {_pending(store.database, extra)} "
        f"ORDER BY dispatched_at, attempt_id LIMIT {int(limit)}"
    )
    return store.select(sql, params)


def note(store: Store, rows: list[dict[str, Any]], action: str, actor: str) -> None:
    """Record what became of these held rows."""
    at = now_utc()
    notes = [
        {
            "at": at,
            "attempt_id": str(r["attempt_id"]),
            "dispatch_id": r["dispatch_id"],
            "rule_id": int(r["rule_id"]),
            "held_at": datetime.fromtimestamp(int(r["held_ms"]) / 1000, UTC),
            "action": action,
            "actor": actor,
        }
        for r in rows
    ]
    if notes:
        store.insert(schema.HELD_TABLE, notes, f"{action}/{notes[0]['attempt_id']}/{len(notes)}")


def release_job(row: dict[str, Any], rule: Rule) -> DispatchJob:
    """The job of a held row: the same dispatch and attempt, for the rule as it is now."""
    return DispatchJob(
        dispatch_id=row["dispatch_id"],
        attempt=int(row["attempt"]),
        event=OrderEvent.model_validate_json(row["event_json"]),
        rule=RuleRef.of(rule),
    )


def discarded_outcome(row: dict[str, Any], why: str) -> AttemptOutcome:
    """The history's record of a held dispatch that will never be sent."""
    at = now_utc()
    salt = f"discarded/{row['attempt_id']}"
    return AttemptOutcome(
        attempt_id=attempt_id_for(row["dispatch_id"], int(row["attempt"]), salt),
        dispatch_id=row["dispatch_id"],
        attempt=int(row["attempt"]),
        manual=False,
        order_id=row["order_id"],
        order_status=row["order_status"] or None,
        event_id=str(row["event_id"]),
        event_type=row["event_type"],
        rule_id=int(row["rule_id"]),
        url=row["url"],
        account_id=row["account_id"],
        dispatched_at=at,
        status="failure",
        reason=DISCARDED,
        error=why,
        duration_ms=0,
        final=True,
    )  # fmt: skip


class HeldKeeper(Periodic):
    """Releases held dispatches of unpaused rules at their `release_rate`; discards expired ones.

    `send_job` and `send_outcome` queue a record and wait until Kafka has it; the held row
    is noted as released or discarded only after that (at least once: a crash in between
    sends it again).
    """

    what = "held dispatches"

    def __init__(
        self,
        store: Store,
        rules: RulesView,
        send_job: Callable[[DispatchJob], None],
        send_outcome: Callable[[AttemptOutcome], None],
        pause: Callable[[Rule, str], Rule],
    ) -> None:
        super().__init__(TICK_S)
        self.pause = pause
        self.store = store
        self.rules = rules
        self.send_job = send_job
        self.send_outcome = send_outcome
        self.backlog: dict[int, int] = {}
        self.allowance: dict[int, float] = {}
        self.last_scan = self.last_expiry = self.last_tick = 0.0
        # 410 answers are looked for at the first scan (one stored before this process ran)
        # and for the lookback after the sink stores one: that query reads the last minutes
        # of attempts, too much to run every second for nothing.
        self.gone_until = time.monotonic() + SCAN_EVERY_S

    def gone_answered(self) -> None:
        """The sink stored an automatic attempt answered 410: look for rules to pause."""
        self.gone_until = time.monotonic() + GONE_LOOKBACK.total_seconds()

    def check(self, now: datetime) -> int:
        """One turn: rescan the backlog when due, release what each rule's rate allows."""
        tick = time.monotonic()
        elapsed, self.last_tick = min(tick - self.last_tick, 1.0), tick
        if tick - self.last_scan >= SCAN_EVERY_S:
            if tick < self.gone_until:
                self.pause_gone(now)
            self.backlog, self.last_scan = held_counts(self.store, now), tick
        if tick - self.last_expiry >= EXPIRE_EVERY_S:
            self.expire(now)
            self.last_expiry = tick
        return sum(self._release_some(rule_id, now, elapsed) for rule_id in list(self.backlog))

    def _release_some(self, rule_id: int, now: datetime, elapsed: float) -> int:
        rule = self.rules.get(rule_id)
        if rule is None or rule.paused or not rule.active or not self.backlog.get(rule_id):
            self.allowance.pop(rule_id, None)
            return 0
        rate = rule.release_rate
        allowance = min(self.allowance.get(rule_id, 0.0) + rate * elapsed, max(rate, 1.0))
        due = int(allowance)
        self.allowance[rule_id] = allowance - due
        if due == 0:
            return 0
        rows = oldest_held(self.store, rule_id, now, due)
        for row in rows:
            self.send_job(release_job(row, rule))
        note(self.store, rows, "released", "disparo")
        RELEASED.inc(len(rows))
        self.backlog[rule_id] = 0 if len(rows) < due else self.backlog[rule_id] - len(rows)
        return len(rows)

    def pause_gone(self, now: datetime) -> list[int]:
        """Pause the rules whose endpoint answered 410 Gone since they were last unpaused."""
        sql = (
            "SELECT rule_id AS rule, toUnixTimestamp64Milli(max(dispatched_at)) AS at_ms, "
            "argMax(url, dispatched_at) AS url "
            f"FROM {self.store.database}.{schema.TABLE} WHERE http_status = 410 AND NOT manual "
            f"AND rule_id > 0 AND dispatched_at >= {{since:{TS_TYPE}}} GROUP BY rule_id"
        )
        paused = []
        for row in self.store.select(sql, {"since": ts_param(now - GONE_LOOKBACK)}):
            rule = self.rules.get(int(row["rule"]))
            at = datetime.fromtimestamp(int(row["at_ms"]) / 1000, UTC)
            if rule is None or rule.paused or not rule.active or str(rule.url) != row["url"]:
                continue
            if any(t is not None and t >= at for t in (rule.resumed_at, rule.activated_at)):
                continue  # answered before a person unpaused or reactivated it
            reason = (
                f"paused automatically: {rule.url} answered 410 Gone at "
                f"{at.isoformat(timespec='seconds')}; its webhooks are held: fix the URL or the "
                "endpoint and unpause the rule to send them"
            )
            self.pause(rule, reason)
            paused.append(rule.id)
        return paused

    def expire(self, now: datetime) -> int:
        """Discard, with a record, dispatches held almost as long as the history keeps them."""
        cutoff = now - KEEP_HELD
        done = 0
        for rule_id in held_counts(self.store, now):
            rows = oldest_held(self.store, rule_id, now, 10_000, before=cutoff)
            why = f"held for over {KEEP_HELD.days} days (the history keeps {schema.RETENTION_DAYS})"
            discard(self.store, rows, why, "disparo", self.send_outcome, "expired")
            done += len(rows)
        return done


def discard(
    store: Store,
    rows: list[dict[str, Any]],
    why: str,
    actor: str,
    send_outcome: Callable[[AttemptOutcome], None],
    label: str = "by_hand",
) -> None:
    """End held dispatches unsent: a final `discarded` row each, then the note."""
    for row in rows:
        send_outcome(discarded_outcome(row, why))
    note(store, rows, "discarded", actor)
    DISCARDED_HELD.labels(label).inc(len(rows))
    if rows:
        log.warning(
            "discarded %d held dispatches of rule %s: %s", len(rows), rows[0]["rule_id"], why
        )
