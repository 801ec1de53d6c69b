"""The delivery worker loop: jobs in, POSTs out, outcomes and retries recorded, then commit.

Polling never waits for deliveries: each record becomes a task, and offsets are committed
up to the first record whose results are not yet durable. A hanging endpoint holds only its
own records (and those after them in its partition's commit point), never the poll loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import signal
import time
from datetime import timedelta
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from consumers import classify, metrics
from consumers.delivery import Deliverer
from consumers.due_gate import DueGate
from consumers.endpoints import EndpointGuard, endpoint_of
from consumers.errors import OutcomeNotRecorded
from consumers.offsets import OffsetTracker
from consumers.retry_policy import RetryPolicy
from consumers.settings import WorkerSettings
from consumers.transport import make_transport
from disparo.errors import InvalidMessage
from disparo.kafka import dead_letter_headers, make_producer, subscribe_when_ready
from disparo.lag import LagMeter
from disparo.ops_http import start_ops_server
from disparo.schemas import AttemptOutcome, DispatchJob, now_utc, parse_job
from disparo.topics import Topics

log = logging.getLogger(__name__)
POLL_S = 0.2
COMMIT_EVERY_S = 0.5


class DeliveryWorker:
    """Consumes first-attempt, retry and resend jobs; commits only what is durably recorded."""

    def __init__(
        self,
        settings: WorkerSettings,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        deliverer: Deliverer,
    ) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.consumer = consumer
        self.producer = producer
        self.deliverer = deliverer
        self.policy = RetryPolicy(settings.retry_tiers, settings.retried_4xx_statuses)
        self.gate = DueGate(consumer)
        self.lag = LagMeter(consumer, settings.worker_group)
        self.guard = EndpointGuard(
            settings.worker_endpoint_concurrency,
            settings.breaker_failures,
            settings.breaker_open_s,
        )
        self.offsets = OffsetTracker()
        self.limit = asyncio.Semaphore(settings.worker_concurrency)
        self.max_in_flight = settings.worker_concurrency * 4
        self.chains: dict[Any, asyncio.Task[None]] = {}
        self.sends: list[Any] = []
        self.uncommitted: dict[TopicPartition, OffsetAndMetadata] = {}
        self.stopping = asyncio.Event()
        self.running = 0
        self.drained = asyncio.Event()
        self.throttled = False
        self.commits = 0

    async def run(self) -> None:
        """Poll, dispatch and commit until `stop()`; then finish what is in flight."""
        last_commit = time.monotonic()
        while not self.stopping.is_set():
            now = now_utc()
            self.gate.release_due(now)
            if self._throttle():
                await self._until_drained()
                continue
            wait_s = self.gate.next_release_s(now, POLL_S)
            polled = await asyncio.to_thread(
                self.consumer.poll,
                timeout_ms=int(wait_s * 1000),
                max_records=self.settings.worker_batch,
            )
            self._take(polled, now_utc())
            if time.monotonic() - last_commit >= COMMIT_EVERY_S:
                await self.commit()
                await asyncio.to_thread(self.lag.maybe_measure)
                last_commit = time.monotonic()
        if self.chains:
            await asyncio.wait(list(self.chains.values()), timeout=60)
        await self.commit()

    def stop(self) -> None:
        """Stop polling; deliveries in flight finish and are committed."""
        self.stopping.set()

    def _take(self, polled: dict[Any, list[Any]], now: Any) -> None:
        for tp, records in polled.items():
            for record in records:
                try:
                    job = parse_job(record.value)
                except InvalidMessage as exc:
                    self.offsets.take(tp, record.offset)
                    self.sends.append(self._dead_letter(record, exc.reason))
                    self.offsets.finish(tp, record.offset)
                    continue
                if job.not_before is not None and job.not_before > now:
                    self.gate.hold(tp, record.offset, job.not_before)
                    break
                self.offsets.take(tp, record.offset)
                self._start(tp, record, job)

    def _start(self, tp: Any, record: Any, job: DispatchJob) -> None:
        # Jobs of one order for one rule go one after another; all others in parallel.
        key = (record.key, job.target.rule_id)
        previous = self.chains.get(key)
        task = asyncio.create_task(self._deliver_after(previous, tp, record.offset, job))
        self.running += 1
        self.chains[key] = task
        task.add_done_callback(functools.partial(self._chain_done, key))

    def _chain_done(self, key: Any, task: asyncio.Task[None]) -> None:
        self.running -= 1
        if self.running <= self.max_in_flight // 2:
            self.drained.set()
        if self.chains.get(key) is task:
            del self.chains[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task failed: %r", task.exception())
            self.stop()

    async def _deliver_after(
        self, previous: asyncio.Task[None] | None, tp: Any, offset: int, job: DispatchJob
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        endpoint = endpoint_of(job.target.url)
        # Manual resends neither wait for nor count toward an endpoint's breaker.
        wait_s = None if job.manual else self.guard.admit(endpoint)
        if wait_s is None:
            outcome = await self._attempt(job, endpoint)
            self.sends.extend(self._record(job, outcome))
        else:
            self.sends.append(self._defer(job, endpoint, wait_s))
        self.offsets.finish(tp, offset)

    def _defer(self, job: DispatchJob, endpoint: str, wait_s: float) -> Any:
        """Park a job whose endpoint's circuit is open; it is not an attempt and uses none."""
        tier = next((t for t in self.policy.tiers if t.delay_s >= wait_s), self.policy.tiers[-1])
        when = now_utc() + timedelta(seconds=wait_s * (1 + 0.2 * random.random()))
        metrics.DEFERRED.labels(classify.CIRCUIT_OPEN).inc()
        log.info(
            "deferred %s: circuit open for %s, next probe in %.0fs",
            job.dispatch_id,
            endpoint,
            wait_s,
            extra={
                "dispatch_id": job.dispatch_id,
                "order_id": job.event.order_id,
                "rule_id": job.target.rule_id,
                "endpoint": endpoint,
            },
        )
        return self.producer.send(
            self.topics.retry(tier.name),
            key=job.event.order_id.encode(),
            value=job.model_copy(update={"not_before": when}).model_dump_json().encode(),
        )

    async def _attempt(self, job: DispatchJob, endpoint: str) -> AttemptOutcome:
        async with self.guard.slot(endpoint), self.limit:
            outcome = await self.deliverer.deliver(job)
        if not job.manual:
            self.guard.record(endpoint, outcome.reason)
        return outcome

    def _record(self, job: DispatchJob, outcome: AttemptOutcome) -> list[Any]:
        """Send the outcome, and the next attempt's job when the policy retries."""
        sends = []
        if outcome.status == "failure":
            retry = None
            if not job.manual:  # a manual resend is one attempt: ops asked for exactly that
                retry = self.policy.next_retry(
                    job.attempt,
                    job.target.max_attempts,
                    outcome.reason,
                    outcome.http_status,
                    outcome.retry_after_s,
                    random.random(),
                )
            if retry is None:
                outcome = outcome.model_copy(update={"final": True})
            else:
                when = outcome.dispatched_at + timedelta(seconds=retry.delay_s)
                sends.append(
                    self.producer.send(
                        self.topics.retry(retry.tier.name),
                        key=job.event.order_id.encode(),
                        value=job.retry_at(when).model_dump_json().encode(),
                    )
                )
                metrics.RETRIES.labels(retry.tier.name).inc()
                outcome = outcome.model_copy(
                    update={"final": False, "retry_tier": retry.tier.name, "retry_at": when}
                )
            log.info(
                "attempt %d of %s failed: %s (%s); %s",
                outcome.attempt,
                outcome.dispatch_id,
                outcome.reason,
                outcome.error,
                f"retry via {outcome.retry_tier}" if outcome.retry_tier else "final",
                extra={
                    "dispatch_id": outcome.dispatch_id,
                    "order_id": outcome.order_id,
                    "rule_id": outcome.rule_id,
                    "attempt": outcome.attempt,
                    "reason": outcome.reason,
                    "retry_tier": outcome.retry_tier,
                },
            )
        metrics.count_rule_delivery(job.target.rule_id, outcome.status)
        metrics.ATTEMPTS.labels(str(job.attempt), str(job.manual).lower()).inc()
        sends.append(
            self.producer.send(
                self.topics.outcomes,
                key=outcome.dispatch_id.encode(),
                value=outcome.model_dump_json().encode(),
            )
        )
        return sends

    async def commit(self) -> None:
        """Make every send durable, then commit each partition's finished prefix."""
        sends, self.sends = self.sends, []
        ready = self.offsets.committable()
        if not sends and not ready:
            return
        await asyncio.to_thread(self.producer.flush)
        for send in sends:
            if send.failed():
                raise OutcomeNotRecorded(f"outcome or retry not written: {send.exception}")
        owned = self.consumer.assignment()
        for tp, offset in ready.items():
            if tp in owned:
                self.uncommitted[tp] = OffsetAndMetadata(offset, "", -1)
        self.offsets.forget(tp for tp in ready if tp not in owned)
        if self.uncommitted:
            await asyncio.to_thread(self._commit)

    def _commit(self) -> None:
        try:
            # Bounded: kafka-python would retry without end while the broker is away.
            self.consumer.commit(dict(self.uncommitted), timeout_ms=15000)
            self.uncommitted.clear()
            self.commits += 1
        except CommitFailedError as exc:
            # The group rebalanced: the new owner re-delivers from the last commit.
            self.uncommitted.clear()
            log.warning("commit refused after a rebalance, records will be redelivered: %s", exc)
        except KafkaError as exc:
            log.warning("commit failed, retried at the next commit: %s", exc)

    def _throttle(self) -> bool:
        """Pause fetching while too many deliveries run; resume at half of it. True if paused."""
        owned = self.consumer.assignment()
        if not self.throttled and self.running >= self.max_in_flight:
            self.consumer.pause(*owned)
            self.drained.clear()
            self.throttled = True
        elif self.throttled and self.running <= self.max_in_flight // 2:
            self.consumer.resume(*(tp for tp in owned if tp not in self.gate.waiting))
            self.throttled = False
        return self.throttled

    async def _until_drained(self) -> None:
        """Wait (briefly) for running deliveries to fall to half the limit."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drained.wait(), POLL_S)

    def _dead_letter(self, record: Any, reason: str) -> Any:
        metrics.DEAD_LETTERS.labels("delivery", "invalid_job").inc()
        log.warning(
            "dead-lettered %s@%s/%s: %s", record.topic, record.partition, record.offset, reason
        )
        headers = dead_letter_headers(
            reason, "delivery", record.topic, record.partition, record.offset
        )
        return self.producer.send(
            self.topics.dead_letter, key=record.key, value=record.value, headers=headers
        )


def make_consumer(settings: WorkerSettings) -> KafkaConsumer:
    """The worker's consumer of first-attempt, retry-tier and resend jobs."""
    topics = Topics(settings.topic_prefix)
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.worker_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=settings.worker_batch,
        fetch_min_bytes=64 * 1024,  # fewer, fuller fetches: the broker's CPU is shared
        fetch_max_wait_ms=50,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        client_id="disparo-worker",
        metadata_max_age_ms=30000,
        # A crashed member's partitions move on after 10 s instead of the 45 s default.
        session_timeout_ms=10000,
        heartbeat_interval_ms=3000,
    )
    retry_topics = [topics.retry(t.name) for t in settings.retry_tiers]
    subscribe_when_ready(consumer, [topics.dispatch_jobs, topics.resend, *retry_topics])
    return consumer


async def serve(settings: WorkerSettings) -> None:
    """Run one worker process until SIGTERM or SIGINT."""
    try:
        consumer = make_consumer(settings)
    except KafkaError as exc:
        raise SystemExit(f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}") from exc
    producer = make_producer(settings, client_id="disparo-worker", linger_ms=20)
    transport = make_transport(settings.worker_concurrency)
    deliverer = Deliverer(
        transport,
        allow_private=settings.allow_private_targets,
        excerpt_bytes=settings.excerpt_bytes,
    )
    worker = DeliveryWorker(settings, consumer, producer, deliverer)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    metrics.declare_series()
    ops = await start_ops_server(
        settings.ops_host, settings.worker_port, lambda: bool(consumer.assignment())
    )
    log.info("delivery worker started group=%s", settings.worker_group)
    try:
        await worker.run()
    finally:
        await transport.aclose()
        if ops is not None:
            await ops.cleanup()
        await asyncio.to_thread(producer.close, 10)
        await asyncio.to_thread(consumer.close)
        log.info("delivery worker stopped after %d commits", worker.commits)
