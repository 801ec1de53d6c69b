"""The delivery worker loop: poll jobs, deliver them, record outcomes and retries, then commit."""

from __future__ import annotations

import asyncio
import logging
import random
import signal
from collections import defaultdict
from datetime import timedelta
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from consumers import metrics
from consumers.delivery import Deliverer
from consumers.due_gate import DueGate
from consumers.errors import OutcomeNotRecorded
from consumers.retry_policy import RetryPolicy
from consumers.settings import WorkerSettings
from consumers.transport import make_transport
from disparo.errors import InvalidMessage
from disparo.kafka import dead_letter_headers, make_producer, subscribe_when_ready
from disparo.ops_http import start_ops_server
from disparo.schemas import AttemptOutcome, DispatchJob, now_utc, parse_job
from disparo.topics import Topics

log = logging.getLogger(__name__)
POLL_S = 0.5


class DeliveryWorker:
    """Consumes first-attempt, retry and resend jobs; offsets advance once results are durable."""

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
        self.limit = asyncio.Semaphore(settings.worker_concurrency)
        self.stopping = asyncio.Event()
        self.batches = 0

    async def run(self) -> None:
        """Process batches until `stop()` is called."""
        while not self.stopping.is_set():
            now = now_utc()
            self.gate.release_due(now)
            wait_ms = int(self.gate.next_release_s(now, POLL_S) * 1000)
            polled = await asyncio.to_thread(
                self.consumer.poll, timeout_ms=wait_ms, max_records=self.settings.worker_batch
            )
            if polled:
                await self.process(polled)

    def stop(self) -> None:
        """Finish the batch in hand, commit it, and return from `run()`."""
        self.stopping.set()

    async def process(self, polled: dict[Any, list[Any]]) -> None:
        """Deliver a polled batch, make its outcomes and retries durable, commit its offsets."""
        now = now_utc()
        chains: dict[bytes | None, list[tuple[Any, DispatchJob]]] = defaultdict(list)
        done: list[Any] = []  # records whose results are sent (or dead-lettered)
        sends: list[Any] = []
        for tp, records in polled.items():
            for record in records:
                try:
                    job = parse_job(record.value)
                except InvalidMessage as exc:
                    sends.append(self._dead_letter(record, exc.reason))
                    done.append(record)
                    continue
                if job.not_before is not None and job.not_before > now:
                    self.gate.hold(tp, record.offset, job.not_before)
                    break
                chains[record.key].append((record, job))
                done.append(record)
        # Jobs of one order go one after another, in offset order; orders go in parallel.
        for results in await asyncio.gather(*(self._chain(c) for c in chains.values())):
            sends.extend(results)
        await asyncio.to_thread(self.producer.flush)
        for send in sends:
            if send.failed():
                raise OutcomeNotRecorded(f"outcome or retry not written: {send.exception}")
        await asyncio.to_thread(self._commit, done)
        self.batches += 1

    async def _chain(self, chain: list[tuple[Any, DispatchJob]]) -> list[Any]:
        sends = []
        for _, job in chain:
            async with self.limit:
                outcome = await self.deliverer.deliver(job)
            sends.extend(self._record(job, outcome))
        return sends

    def _record(self, job: DispatchJob, outcome: AttemptOutcome) -> list[Any]:
        """Send the outcome, and the next attempt's job when the policy retries."""
        key = job.event.order_id.encode()
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
                topic = self.topics.retry(retry.tier.name)
                sends.append(
                    self.producer.send(
                        topic, key=key, value=job.retry_at(when).model_dump_json().encode()
                    )
                )
                metrics.RETRIES.labels(retry.tier.name).inc()
                outcome = outcome.model_copy(
                    update={"final": False, "retry_tier": retry.tier.name, "retry_at": when}
                )
            log.info(
                "attempt failed dispatch_id=%s order_id=%s attempt=%d reason=%s error=%s retry=%s",
                outcome.dispatch_id,
                outcome.order_id,
                outcome.attempt,
                outcome.reason,
                outcome.error,
                outcome.retry_tier or "none (final)",
            )
        sends.append(
            self.producer.send(
                self.topics.outcomes,
                key=outcome.dispatch_id.encode(),
                value=outcome.model_dump_json().encode(),
            )
        )
        return sends

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

    def _commit(self, records: list[Any]) -> None:
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            if tp not in offsets or offsets[tp].offset <= r.offset:
                offsets[tp] = OffsetAndMetadata(r.offset + 1, "", -1)
        if not offsets:
            return
        try:
            self.consumer.commit(offsets)
        except CommitFailedError as exc:
            # The group rebalanced: the new owner re-delivers from the last commit.
            log.warning("commit refused after a rebalance, batch will be redelivered: %s", exc)


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
    ops = await start_ops_server(settings.worker_port, lambda: bool(consumer.assignment()))
    log.info("delivery worker started group=%s", settings.worker_group)
    try:
        await worker.run()
    finally:
        await transport.aclose()
        if ops is not None:
            await ops.cleanup()
        await asyncio.to_thread(producer.close, 10)
        await asyncio.to_thread(consumer.close)
        log.info("delivery worker stopped after %d batches", worker.batches)
