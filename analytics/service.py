"""The analytics process: outcomes sink and management API over one store (chdb owns its path)."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI
from kafka import KafkaProducer

from analytics.api.app import create_app
from analytics.api.deps import Services
from analytics.event_sink import EventSink
from analytics.held import HeldKeeper
from analytics.liveness import sink_problem
from analytics.pausing import Pauser
from analytics.rule_health import RuleHealth
from analytics.sending import send_job, send_outcome
from analytics.settings import AnalyticsSettings
from analytics.sink import OutcomeSink
from analytics.store import ensure_schema_when_reachable, open_store
from analytics.warden import RuleWarden
from disparo.accounts_view import AccountsView
from disparo.kafka import make_producer
from disparo.keys_view import KeysView
from disparo.lag import GroupLag
from disparo.rules_view import RulesView
from disparo.topics import Topics

log = logging.getLogger(__name__)


def run(
    settings: AnalyticsSettings,
    extra_routers: Sequence[APIRouter] = (),
    extra_state: Callable[[KafkaProducer], Mapping[str, Any]] | None = None,
) -> None:
    """Serve the API (with routers other stages serve here, e.g. the HTTP ingest, and the
    state they need, built on this process's producer once the store is checked); the sink
    and the rules view live for as long as the app does."""
    store = open_store(settings.clickhouse_url, settings.chdb_path)
    ensure_schema_when_reachable(store)
    producer = make_producer(settings, client_id="disparo-analytics")
    box = settings.secret_box()
    rules = RulesView(settings, box)
    keys = KeysView(settings)
    accounts = AccountsView(settings, box)
    sink = OutcomeSink(settings, store, producer)
    sink_thread = threading.Thread(target=_guarded(sink.run), name="sink", daemon=True)
    topics = Topics(settings.topic_prefix)
    lag = GroupLag(settings, settings.sink_group, [topics.outcomes])
    events = EventSink(settings, store, producer)
    events_thread = threading.Thread(target=_guarded(events.run), name="events", daemon=True)
    events_lag = GroupLag(settings, settings.event_sink_group, [topics.order_events])
    problems = (
        sink_problem(sink, sink_thread, lag, settings.sink_stall_s),
        sink_problem(events, events_thread, events_lag, settings.sink_stall_s, "order events"),
    )
    svc = Services(
        store=store,
        rules=rules,
        keys=keys,
        accounts=accounts,
        box=box,
        producer=producer,
        topics=topics,
        ready=lambda: sink_thread.is_alive() and sink.consuming(),
        problem=lambda: problems[0]() or problems[1](),
        allowlist=settings.allowed_targets,
        secret_overlap=settings.secret_overlap_delta,
        kafka=settings,
    )

    # uvicorn re-raises SIGTERM once it has shut down, so cleanup after `uvicorn.run` would
    # never run: the sink must flush, commit and leave its group in the app's lifespan.
    warden, held = _timers(settings, svc)
    sink.on_gone = held.gone_answered
    warden_thread = threading.Thread(target=warden.run, name="warden", daemon=True)
    held_thread = threading.Thread(target=held.run, name="held", daemon=True)
    health = RuleHealth(
        store,
        rules,
        accounts,
        functools.partial(send_job, svc),
        settings.failing_window_delta or timedelta(0),
        settings.health_interval_s,
    )
    health_thread = threading.Thread(target=health.run, name="rule-health", daemon=True)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        rules.start()
        keys.start()
        accounts.start()
        sink_thread.start()
        events_thread.start()
        lag.start()
        events_lag.start()
        if warden.after is not None:
            warden_thread.start()
        held_thread.start()
        if settings.failing_window_delta is not None:
            health_thread.start()
        yield
        warden.stop()
        held.stop()
        health.stop()
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

    state = extra_state(producer) if extra_state is not None else None
    app = create_app(svc, extra_routers, state, lifespan, settings.allowed_hosts)
    log.info("management API on http://%s:%d/", settings.api_host, settings.api_port)
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


def _timers(settings: AnalyticsSettings, svc: Services) -> tuple[RuleWarden, HeldKeeper]:
    """The rule warden and the keeper of held dispatches, pausing rules the same way."""
    pauser = Pauser(svc, functools.partial(send_job, svc))
    after, every = settings.deactivate_after_delta, settings.warden_interval_s
    warden = RuleWarden(svc.store, svc.rules, pauser.pause, after, every)
    held = HeldKeeper(
        svc.store,
        svc.rules,
        functools.partial(send_job, svc),
        functools.partial(send_outcome, svc),
        pauser.pause,
    )
    return warden, held


def _guarded(target: Callable[[], None]) -> Callable[[], None]:
    """Run a thread's target; if it dies, stop the whole process so it gets restarted."""

    def runner() -> None:
        try:
            target()
        except Exception:
            log.exception("a sink stopped on an error; exiting so it can restart")
            os.kill(os.getpid(), signal.SIGTERM)

    return runner
