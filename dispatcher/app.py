"""The faust app: agents turning order events into dispatch jobs and checking rule records."""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import faust
from pydantic import ValidationError

from disparo import heap
from disparo.dead_letter import dead_letter_headers
from disparo.errors import DisparoError
from disparo.keys_view import KeysView
from disparo.lag import GroupLag
from disparo.loops import install_fast_loop
from disparo.ops_http import start_ops_server
from disparo.parking import ParkedEndpoints
from disparo.rule_codec import decode_rule
from disparo.rules_view import RulesView
from disparo.schemas import describe, now_utc
from disparo.secret_box import SecretBox
from disparo.topics import ORDER_EVENT_PARTITIONS, Topics
from dispatcher import metrics
from dispatcher.acks import BatchAcks, stop_process
from dispatcher.detours import Detours
from dispatcher.routing import route
from dispatcher.settings import DispatcherSettings
from dispatcher.transport import use_short_fetch_wait

log = logging.getLogger(__name__)
# Events routed together: at most this many, waiting at most this long for more.
EVENT_BATCH = 500
EVENT_BATCH_WAIT_S = 0.01


def broker_credentials(settings: DispatcherSettings) -> faust.types.auth.CredentialsT | None:
    """faust's (aiokafka's) form of the DISPARO_KAFKA_* security settings."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.kafka_ca_file or None)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    password = settings.kafka_sasl_password
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=password.get_secret_value() if password else "",
        ssl_context=context,
        mechanism=settings.kafka_sasl_mechanism,
    )


def create_app(
    settings: DispatcherSettings,
    rules_view: RulesView,
    parking: ParkedEndpoints,
    keys: KeysView | None = None,
) -> faust.App:
    """Build the dispatcher app for one set of settings (topic prefix, group, ports)."""
    topics = Topics(settings.topic_prefix)
    detours = Detours(topics, settings.retry_tiers)
    data_dir = settings.dispatcher_data_dir or str(settings.home / "dispatcher")
    app = faust.App(
        settings.dispatcher_group,
        broker=[f"kafka://{s}" for s in settings.bootstrap_servers],
        broker_credentials=broker_credentials(settings),
        store="memory://",
        datadir=data_dir,
        topic_partitions=ORDER_EVENT_PARTITIONS,
        topic_allow_declare=True,
        topic_replication_factor=settings.topic_replication,  # faust's own internal topics
        producer_acks=-1,
        producer_linger=0.02,
        producer_max_batch_size=512 * 1024,
        producer_max_request_size=12 * 1024 * 1024,  # dead-lettered oversized events
        consumer_max_fetch_size=12 * 1024 * 1024,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        # As the kernel's consumers: a killed instance's partitions move on after the session
        # timeout (10 s by default), not faust's 60.
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_heartbeat_interval=settings.kafka_heartbeat_s,
        # The ops endpoints come from the kernel's server (below), as in the workers.
        web_enabled=False,
    )
    use_short_fetch_wait(app)
    events_topic = app.topic(topics.order_events, key_serializer="raw", value_serializer="raw")
    rules_topic = app.topic(topics.rules, key_serializer="raw", value_serializer="raw")

    async def to_dead_letter(event: Any, reason: str, what: str) -> Awaitable[Any]:
        """Send the event's record to the dead-letter topic; the future of that send."""
        msg = event.message
        headers = dead_letter_headers(reason, "dispatcher", msg.topic, msg.partition, msg.offset)
        sent = await app.producer.send(topics.dead_letter, msg.key, msg.value, None, None, headers)
        metrics.DEAD_LETTERS.labels("dispatcher", what).inc()
        log.warning("dead-lettered %s@%s/%s: %s", msg.topic, msg.partition, msg.offset, reason)
        return sent

    # Every instance matches against every rule: `rules_view` tails the whole rules topic
    # without a group. (faust's GlobalTable stops updating all but one instance,
    # faust-streaming#283.) This agent, one instance per record, dead-letters invalid ones.
    @app.agent(rules_topic)
    @_fatal_on_crash
    async def check_rules(stream: Any) -> None:
        async for event in stream.events():
            await _check_rule(event, to_dead_letter, rules_view.box)

    async def route_one(
        event: Any, rules: tuple[Any, ...], parked: dict[str, datetime], now: datetime
    ) -> list[Awaitable[Any]]:
        """Send one event's jobs (or its dead letter); the futures of those sends."""
        msg = event.message
        routed = route(msg.value, rules)
        if routed.refused:
            metrics.EVENTS.labels("dead_lettered").inc()
            return [await to_dead_letter(event, routed.reason, routed.refused)]
        sends = []
        for job in routed.jobs:
            topic, sent = detours.destination(job, rules, parked, now)
            sends.append(
                await app.producer.send(
                    topic, msg.key, sent.model_dump_json().encode(), None, None, None
                )
            )
            if sent is not job:
                metrics.PARKED.inc()
        metrics.JOBS.inc(len(routed.jobs))
        metrics.EVENTS.labels("routed" if routed.jobs else "unmatched").inc()
        return sends

    # Events come in batches, acked by hand only once Kafka has every job they produced
    # (dispatcher/acks.py): faust's per-event send and ack machinery cost more CPU than the
    # matching itself (docs/benchmarks.md, issue 16).
    @app.agent(events_topic)
    @_fatal_on_crash
    async def route_events(stream: Any) -> None:
        acks = BatchAcks(stream)
        async for events in stream.noack_take(EVENT_BATCH, within=EVENT_BATCH_WAIT_S):
            rules, now = rules_view.snapshot(), now_utc()
            parked = parking.parked(now)
            sends = [
                sent for event in events for sent in await route_one(event, rules, parked, now)
            ]
            acks.when_sent(events, sends)

    @app.task  # type: ignore[untyped-decorator]
    async def serve_ops() -> None:
        try:
            await start_ops_server(
                settings.ops_host,
                settings.dispatcher_port,
                lambda: app.consumer is not None and bool(app.consumer.assignment()),
                {"/rules": lambda: _applied(rules_view)},
                admin=keys.is_platform_admin if keys is not None else None,
            )
        except DisparoError:
            log.exception("the dispatcher cannot serve its ops endpoints; stopping")
            stop_process()

    return app


def _fatal_on_crash(agent: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    """Stop the worker when an agent crashes: faust would keep running without it."""

    @functools.wraps(agent)
    async def guarded(stream: Any) -> None:
        try:
            await agent(stream)
        except Exception:
            log.exception("agent %s crashed; stopping the dispatcher", agent.__name__)
            stop_process()
            raise

    return guarded


async def _check_rule(event: Any, to_dead_letter: Any, box: SecretBox) -> None:
    """Dead-letter an invalid rule record, acked by Kafka before faust acks the record."""
    problem = _rule_problem(event, box)
    if problem is not None:
        await (await to_dead_letter(event, f"rule: {problem}", "invalid_rule"))


def _rule_problem(event: Any, box: SecretBox) -> str | None:
    """Why a rule record is invalid, or None (a tombstone or a valid rule, counted)."""
    key = event.message.key.decode() if event.message.key else ""
    raw = event.message.value
    if raw is None:
        metrics.RULE_CHANGES.labels("deleted").inc()
        return None
    try:
        rule = decode_rule(raw, box)
    except ValidationError as exc:
        return describe(exc)
    except (ValueError, DisparoError) as exc:  # not JSON, or sealed under another key
        return str(exc)
    if str(rule.id) != key:
        return f"key {key!r} differs from id {rule.id}"
    metrics.RULE_CHANGES.labels("upserted").inc()
    return None


def _applied(rules_view: RulesView) -> dict[str, Any]:
    """The rules this instance applies, for /rules."""
    return {"rules": [{"id": r.id, "active": r.active} for r in rules_view.snapshot()]}


def run(settings: DispatcherSettings) -> None:
    """Run the dispatcher worker until stopped by a signal."""
    Path(settings.dispatcher_data_dir or settings.home / "dispatcher").mkdir(
        parents=True, exist_ok=True
    )
    install_fast_loop()
    # Rules first: an event routed before the view caught up would miss its rules.
    rules_view = RulesView(settings, settings.secret_box())
    rules_view.start(timeout_s=60)
    parking = ParkedEndpoints(settings)
    parking.start(timeout_s=60)
    keys = KeysView(settings)  # who may read /debug/stacks
    keys.start(timeout_s=60)
    app = create_app(settings, rules_view, parking, keys)
    topics = Topics(settings.topic_prefix)
    GroupLag(settings, settings.dispatcher_group, [topics.order_events, topics.rules]).start()
    worker = faust.Worker(app, loglevel=settings.log_level.lower())
    # The terminal spinner turns the root logger to DEBUG, building a record per message.
    worker.spinner = None
    heap.settle()
    worker.execute_from_commandline()
