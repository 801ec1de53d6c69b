"""The delivery worker loop: poll jobs, deliver them concurrently, record, then commit."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterable
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from consumers import metrics
from consumers.delivery import Deliverer
from consumers.errors import OutcomeNotRecorded
from consumers.settings import WorkerSettings
from consumers.transport import make_transport
from disparo.errors import InvalidMessage
from disparo.kafka import dead_letter_headers, make_producer, subscribe_when_ready
from disparo.ops_http import start_ops_server
from disparo.schemas import parse_job
from disparo.topics import Topics

log = logging.getLogger(__name__)


class DeliveryWorker:
    """Consumes dispatch and resend jobs; offsets advance only once outcomes are durable."""

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
        self.limit = asyncio.Semaphore(settings.worker_concurrency)
        self.stopping = asyncio.Event()
        self.batches = 0

    async def run(self) -> None:
        """Process batches until `stop()` is called."""
        while not self.stopping.is_set():
            polled = await asyncio.to_thread(
                self.consumer.poll, timeout_ms=500, max_records=self.settings.worker_batch
            )
            records = [r for batch in polled.values() for r in batch]
            if records:
                await self.process(records)

    def stop(self) -> None:
        """Finish the batch in hand, commit it, and return from `run()`."""
        self.stopping.set()

    async def process(self, records: list[Any]) -> None:
        """Deliver one polled batch, make every outcome durable, then commit its offsets."""
        sends = await asyncio.gather(*(self._handle(r) for r in records))
        await asyncio.to_thread(self.producer.flush)
        for send in sends:
            if send.failed():
                raise OutcomeNotRecorded(f"outcome not written: {send.exception}")
        await asyncio.to_thread(self._commit, records)
        self.batches += 1

    async def _handle(self, record: Any) -> Any:
        try:
            job = parse_job(record.value)
        except InvalidMessage as exc:
            return self._dead_letter(record, exc.reason)
        async with self.limit:
            outcome = await self.deliverer.deliver(job)
        if outcome.status == "failure":
            log.info(
                "attempt failed dispatch_id=%s order_id=%s reason=%s error=%s",
                outcome.dispatch_id,
                outcome.order_id,
                outcome.reason,
                outcome.error,
            )
        return self.producer.send(
            self.topics.outcomes,
            key=outcome.dispatch_id.encode(),
            value=outcome.model_dump_json().encode(),
        )

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

    def _commit(self, records: Iterable[Any]) -> None:
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            if tp not in offsets or offsets[tp].offset <= r.offset:
                offsets[tp] = OffsetAndMetadata(r.offset + 1, "", -1)
        try:
            self.consumer.commit(offsets)
        except CommitFailedError as exc:
            # The group rebalanced: the new owner re-delivers from the last commit.
            log.warning("commit refused after a rebalance, batch will be redelivered: %s", exc)


def make_consumer(settings: WorkerSettings) -> KafkaConsumer:
    """The worker's consumer of first-attempt and resend jobs."""
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
    )
    subscribe_when_ready(consumer, [topics.dispatch_jobs, topics.resend])
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
