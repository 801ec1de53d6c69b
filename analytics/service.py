"""The analytics process: outcomes sink and management API over one store (chdb owns its path)."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from analytics.api.app import create_app
from analytics.control.account_book import AccountBook
from analytics.control.duties import DutyOwner, member_name
from analytics.control.held_keeper import HeldKeeper
from analytics.control.ingest import Intake
from analytics.control.job_queue import JobQueue
from analytics.control.keys import KeyRing
from analytics.control.live_feed import LiveFeed
from analytics.control.outcome_watch import OutcomeWatch
from analytics.control.pausing import Pauser
from analytics.control.periodic import Periodic
from analytics.control.rate_limit import RateLimiter
from analytics.control.rule_book import RuleBook
from analytics.control.rule_health import RuleHealth
from analytics.control.services import Services
from analytics.control.sla_watch import SlaWatch
from analytics.control.warden import RuleWarden
from analytics.history.event_sink import EventSink
from analytics.history.liveness import sink_problem
from analytics.history.matched_rules import MatchedRules
from analytics.history.sink import OutcomeSink
from analytics.history.store import ensure_schema_when_reachable, open_store
from analytics.settings import AnalyticsSettings
from disparo import heap
from disparo.accounts_view import AccountsView
from disparo.kafka import make_producer
from disparo.keys_view import KeysView
from disparo.lag import GroupLag
from disparo.rules_view import RulesView
from disparo.topics import Topics

log = logging.getLogger(__name__)
GRACEFUL_SHUTDOWN_S = 5


def search_keys_of(accounts: AccountsView, account_id: str) -> list[str]:
    """An account's search keys as its view holds them now (none for an unknown account)."""
    account = accounts.get(account_id)
    return account.search_keys if account is not None else []


def run(settings: AnalyticsSettings) -> None:
    """Serve the API and the page; the sinks, the views and the timers live as long as it."""
    store = open_store(settings.clickhouse_url, settings.chdb_path, settings.query_timeout_s)
    ensure_schema_when_reachable(store)
    producer = make_producer(settings, client_id="disparo-analytics")
    box = settings.secret_box()
    topics = Topics(settings.topic_prefix)
    rules = RulesView(settings, box)
    keys = KeysView(settings)
    accounts = AccountsView(settings, box)
    sink = OutcomeSink(settings, store, producer)
    sink_thread = threading.Thread(target=_guarded(sink.run), name="sink", daemon=True)
    lag = GroupLag(settings, settings.sink_group, [topics.outcomes])
    events = EventSink(
        settings, store, producer, functools.partial(search_keys_of, accounts), MatchedRules(rules)
    )
    events_thread = threading.Thread(target=_guarded(events.run), name="events", daemon=True)
    events_lag = GroupLag(settings, settings.event_sink_group, [topics.order_events])
    problems = (
        sink_problem(sink, sink_thread, lag, settings.sink_stall_s),
        sink_problem(events, events_thread, events_lag, settings.sink_stall_s, "order events"),
    )
    limiter = RateLimiter(share=lambda: owner.share())
    outcomes = OutcomeWatch(settings, topics.outcomes)
    live = LiveFeed(settings, topics.outcomes)
    allowlist = settings.allowed_targets
    svc = Services(
        store=store,
        rule_book=RuleBook(producer, topics, rules, box),
        account_book=AccountBook(producer, topics, accounts, box, store, allowlist),
        key_ring=KeyRing(producer, topics, keys, store),
        jobs=JobQueue(producer, topics),
        intake=Intake(producer, topics, accounts, limiter),
        topics=topics,
        ready=lambda: sink_thread.is_alive() and sink.consuming(),
        problem=lambda: problems[0]() or problems[1](),
        secret_overlap=settings.secret_overlap_delta,
        limiter=limiter,
        outcomes=outcomes,
        live=live,
    )

    # uvicorn re-raises SIGTERM once it has shut down, so cleanup after `uvicorn.run` would
    # never run: the sink must flush, commit and leave its group in the app's lifespan.
    owner, held = _duties(settings, svc)
    sink.on_gone = held.gone_answered

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        rules.start()
        keys.start()
        accounts.start()
        sink_thread.start()
        events_thread.start()
        lag.start()
        events_lag.start()
        owner.start()
        outcomes.start()
        live.start()
        heap.settle()
        yield
        await asyncio.to_thread(outcomes.stop)
        await asyncio.to_thread(live.stop)
        await asyncio.to_thread(owner.stop)  # leaves the group: another takes over at once
        # A sink stuck past its limit will not flush: do not hold the shutdown for it (its
        # uncommitted records are read again by the next owner).
        stuck = max(sink.stalled_for(), events.stalled_for()) > settings.sink_stall_s
        sink.stop()
        events.stop()
        if stuck:
            log.warning("a sink is stuck; stopping without waiting for it")
        await asyncio.to_thread(sink_thread.join, 1 if stuck else 30)
        await asyncio.to_thread(events_thread.join, 1 if stuck else 30)
        await asyncio.to_thread(lag.stop)
        await asyncio.to_thread(events_lag.stop)
        rules.stop()
        keys.stop()
        accounts.stop()
        producer.close(10)
        store.close()
        if stuck:
            # The stuck thread (or a pool thread it waits on) would hold the interpreter's
            # exit forever, until a SIGKILL: leave now, non-zero, logs flushed.
            log.error("analytics stopped with a sink stuck; its offsets were not committed")
            logging.shutdown()
            os._exit(1)
        log.info("analytics stopped: sink flushed, offsets committed, group left")

    app = create_app(svc, (), lifespan, settings.allowed_hosts)
    log.info("management API on http://%s:%d/", settings.api_host, settings.api_port)
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        # A live-history stream never ends by itself: past this, a stopping server cancels
        # what still runs (browsers reconnect to another process or to the restarted one).
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )


def _duties(settings: AnalyticsSettings, svc: Services) -> tuple[DutyOwner, HeldKeeper]:
    """The background duties, run by whichever analytics process Kafka makes their owner."""
    pauser = Pauser(svc.rule_book, svc.accounts, svc.jobs, svc.store)
    held = HeldKeeper(svc.store, svc.rules, svc.jobs, pauser)
    duties: list[Periodic] = [held]
    if settings.deactivate_after_delta is not None:
        every = settings.warden_interval_s
        duties.append(
            RuleWarden(svc.store, svc.rules, pauser, settings.deactivate_after_delta, every)
        )
    if settings.failing_window_delta is not None:
        window, every = settings.failing_window_delta, settings.health_interval_s
        duties.append(RuleHealth(svc.store, svc.rules, svc.accounts, svc.jobs, window, every))
        metered = settings.metered_accounts
        duties.append(SlaWatch(svc.store, svc.accounts, svc.jobs, window, every, metered))
    name = member_name(settings.api_port)
    owner = DutyOwner(settings, svc.topics.control, settings.duties_group, name, duties)
    return owner, held


def _guarded(target: Callable[[], None]) -> Callable[[], None]:
    """Run a thread's target; if it dies, stop the whole process so it gets restarted."""

    def runner() -> None:
        try:
            target()
        except Exception:
            log.exception("a sink stopped on an error; exiting so it can restart")
            os.kill(os.getpid(), signal.SIGTERM)

    return runner
