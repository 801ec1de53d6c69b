"""The keeper of held dispatches: releases them oldest first at the rule's rate once it is
unpaused, discards those about to leave the history, and pauses rules whose endpoint is gone.

Releasing publishes the dispatch's job again (not manual: it is the dispatch itself, late)
and then notes it.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter

from analytics.control.job_queue import JobQueue, release_job
from analytics.control.pausing import Pauser
from analytics.control.periodic import Periodic
from analytics.history import schema
from analytics.history.held_rows import held_counts, note, oldest_held
from analytics.history.queries import TS_TYPE, ts_param
from analytics.history.store import Store
from disparo.reasons import DISCARDED
from disparo.redaction import shown_url
from disparo.rules_view import RulesView
from disparo.schemas import AttemptOutcome, attempt_id_for, now_utc

log = logging.getLogger(__name__)
RELEASED = Counter("disparo_held_released_total", "Held dispatches released after an unpause.")
DISCARDED_HELD = Counter(
    "disparo_held_discarded_total", "Held dispatches discarded, by why.", ["why"]
)
TICK_S = 0.1
SCAN_EVERY_S = 1.0  # how often the held backlog (and gone endpoints) are looked up
EXPIRE_EVERY_S = 600.0
# Also every so often: with a server store another replica's sink may have stored the 410.
GONE_EVERY_S = 30.0
GONE_LOOKBACK = timedelta(minutes=10)  # 410 answers looked at (the sink stores them in seconds)
# After a takeover, how long held rows are checked for a send the previous owner made: its
# last jobs are delivered (and stored) well within this, while the new owner waited for the
# session timeout to get the duties.
CHECK_SENT_S = 60.0
# Discarded a day before the history's TTL would take them silently.
KEEP_HELD = timedelta(days=schema.RETENTION_DAYS - 1)


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

    The job queue sends a record and waits until Kafka has it; the held row
    is noted as released or discarded only after that (at least once: a crash in between
    sends it again).
    """

    what = "held dispatches"

    def __init__(
        self,
        store: Store,
        rules: RulesView,
        jobs: JobQueue,
        pauser: Pauser,
    ) -> None:
        super().__init__(TICK_S)
        self.pauser = pauser
        self.store = store
        self.rules = rules
        self.jobs = jobs
        self.backlog: dict[int, int] = {}
        self.allowance: dict[int, float] = {}
        self.last_scan = self.last_expiry = self.last_tick = self.last_gone = 0.0
        # 410 answers are looked for at the first scan (one stored before this process ran)
        # and for the lookback after the sink stores one: that query reads the last minutes
        # of attempts, too much to run every second for nothing.
        self.gone_until = time.monotonic() + SCAN_EVERY_S
        self.check_sent_until = 0.0

    def starting(self) -> None:
        """Taking over: for a while, a held row already sent by the previous owner (which
        died between sending and noting) is noted, not sent again."""
        self.check_sent_until = time.monotonic() + CHECK_SENT_S
        self.last_scan = self.last_expiry = self.last_gone = 0.0
        self.gone_until = time.monotonic() + SCAN_EVERY_S

    def gone_answered(self) -> None:
        """The sink stored an automatic attempt answered 410: look for rules to pause."""
        self.gone_until = time.monotonic() + GONE_LOOKBACK.total_seconds()

    def check(self, now: datetime) -> int:
        """One turn: rescan the backlog when due, release what each rule's rate allows."""
        tick = time.monotonic()
        elapsed, self.last_tick = min(tick - self.last_tick, 1.0), tick
        if tick - self.last_scan >= SCAN_EVERY_S:
            if tick < self.gone_until or tick - self.last_gone >= GONE_EVERY_S:
                self.pause_gone(now)
                self.last_gone = tick
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
        checking = time.monotonic() < self.check_sent_until
        rows = oldest_held(self.store, rule_id, now, due, with_sent=checking)
        sent = [r for r in rows if checking and r["sent"]]
        if sent:  # released by the previous owner, which died before noting it
            note(self.store, sent, "released", "disparo")
            log.info("rule %d: %d held dispatches were already sent; noted", rule_id, len(sent))
        fresh = [r for r in rows if not (checking and r["sent"])]
        # An expunged order's held dispatch has no event left to send: noted as discarded.
        erased = [r for r in fresh if r["event_json"] == schema.EXPUNGED]
        if erased:
            note(self.store, erased, "discarded", "disparo (order expunged)")
            fresh = [r for r in fresh if r["event_json"] != schema.EXPUNGED]
        self.jobs.dispatch([release_job(row, rule) for row in fresh])
        note(self.store, fresh, "released", "disparo")
        RELEASED.inc(len(fresh))
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
            if (
                rule is None
                or rule.paused
                or not rule.active
                or shown_url(str(rule.url)) != row["url"]
            ):
                continue
            if any(t is not None and t >= at for t in (rule.resumed_at, rule.activated_at)):
                continue  # answered before a person unpaused or reactivated it
            reason = (
                f"paused automatically: {row['url']} answered 410 Gone at "
                f"{at.isoformat(timespec='seconds')}; its webhooks are held: fix the URL or the "
                "endpoint and unpause the rule to send them"
            )
            self.pauser.pause(rule, reason)
            paused.append(rule.id)
        return paused

    def expire(self, now: datetime) -> int:
        """Discard, with a record, dispatches held almost as long as the history keeps them."""
        cutoff = now - KEEP_HELD
        done = 0
        for rule_id in held_counts(self.store, now):
            rows = oldest_held(self.store, rule_id, now, 10_000, before=cutoff)
            why = f"held for over {KEEP_HELD.days} days (the history keeps {schema.RETENTION_DAYS})"
            discard(self.store, rows, why, "disparo", self.jobs, "expired")
            done += len(rows)
        return done


def discard(
    store: Store,
    rows: list[dict[str, Any]],
    why: str,
    actor: str,
    jobs: JobQueue,
    label: str = "by_hand",
) -> None:
    """End held dispatches unsent: a final `discarded` row each, then the note."""
    jobs.send_outcomes([discarded_outcome(row, why) for row in rows])
    note(store, rows, "discarded", actor)
    DISCARDED_HELD.labels(label).inc(len(rows))
    if rows:
        log.warning(
            "discarded %d held dispatches of rule %s: %s", len(rows), rows[0]["rule_id"], why
        )
