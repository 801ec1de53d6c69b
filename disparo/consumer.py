"""Group consumers the one way disparo runs them: each owned by one thread, commits bounded.

kafka-python's `KafkaConsumer` is not thread-safe. Every consumer here is created, polled,
committed, paused and closed on one thread; other threads read only `assigned`, a snapshot
the owner refreshes after each call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from disparo.errors import KafkaUnavailable
from disparo.kafka import client_options, unreachable
from disparo.settings import KernelSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
# kafka-python retries a commit without end while the broker is away; bounded, a failed
# commit is retried with the next one and the loop keeps polling (and heartbeating).
COMMIT_TIMEOUT_S = 15
# Group-less consumers (lookups, tailing) wait at most this long for one answer.
REQUEST_TIMEOUT_MS = 10000
# A fetch answer holds up to this many bytes of records (kafka-python's default is 50 MiB);
# the sinks' polls are bounded by it whatever their records hold (an outcome batch is up to
# 1 MiB of rows).
FETCH_MAX_BYTES = 16 * 1024 * 1024


def frame_limits(fetch_max_bytes: int = FETCH_MAX_BYTES) -> dict[str, int]:
    """A fetch size and a network frame limit that holds it.

    kafka-python refuses any answer over `receive_message_max_bytes` (1 MB by default) by
    closing the connection, while the broker may answer a fetch with up to `fetch_max_bytes`:
    under a backlog spread over partitions a consumer then reconnected and refetched, a
    stall of seconds each time and a rebalance at worst (found in `make bench`, issue 29).
    The broker adds per-partition headers around the records, hence the margin.
    """
    return {
        "fetch_max_bytes": fetch_max_bytes,
        "receive_message_max_bytes": fetch_max_bytes + 1024 * 1024,
    }


def group_consumer(
    settings: KernelSettings, group: str, client_id: str, **overrides: Any
) -> KafkaConsumer:
    """A consumer in `group` that commits by hand and starts new groups at the earliest record."""
    options: dict[str, Any] = {
        **client_options(settings),
        "group_id": group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "client_id": client_id,
        "metadata_max_age_ms": 30000,
        # A crashed member's partitions move on after 10 s (default) instead of 45 s.
        "session_timeout_ms": int(settings.kafka_session_timeout_s * 1000),
        "heartbeat_interval_ms": int(settings.kafka_heartbeat_s * 1000),
    }
    options.update(overrides)
    options.update(frame_limits(options.get("fetch_max_bytes", FETCH_MAX_BYTES)))
    try:
        return KafkaConsumer(**options)
    except KafkaError as exc:
        raise unreachable(settings, exc) from exc


def plain_consumer(settings: KernelSettings, client_id: str) -> KafkaConsumer:
    """A consumer outside any group (assigned partitions, offset lookups); requests bounded."""
    try:
        return KafkaConsumer(
            **client_options(settings),
            group_id=None,
            enable_auto_commit=False,
            client_id=client_id,
            request_timeout_ms=REQUEST_TIMEOUT_MS,
            **frame_limits(),
        )
    except KafkaError as exc:
        raise unreachable(settings, exc) from exc


def subscribe_when_ready(
    consumer: KafkaConsumer, topics: list[str], listener: Any = None, timeout_s: float = 60.0
) -> None:
    """Subscribe once the client knows every topic's partitions.

    A group joined before the client has a topic's metadata gets an empty assignment for it,
    and kafka-python only rejoins at the next metadata refresh.
    """
    deadline = time.monotonic() + timeout_s
    missing = list(topics)
    while missing:
        missing = [t for t in missing if not consumer.partitions_for_topic(t)]
        if missing and time.monotonic() > deadline:
            raise KafkaUnavailable(f"topics {missing} not found; create them with `disparo topics`")
        if missing:
            time.sleep(0.2)
    if listener is None:
        consumer.subscribe(topics)
    else:
        consumer.subscribe(topics, listener=listener)


def commit_bounded(
    consumer: KafkaConsumer, offsets: dict[TopicPartition, OffsetAndMetadata], who: str
) -> bool:
    """Commit `offsets`; True if they are done with (committed, or refused after a rebalance).

    False means the broker did not answer in time: keep them and commit again later.
    """
    try:
        consumer.commit(offsets, timeout_ms=COMMIT_TIMEOUT_S * 1000)
        return True
    except CommitFailedError as exc:
        # The group rebalanced: the partitions' new owner re-reads from the last commit.
        log.warning("%s commit refused after a rebalance: %s", who, exc)
        return True
    except KafkaError as exc:
        log.warning("%s commit failed, retried with the next one: %s", who, exc)
        return False


class ConsumerThread:
    """One thread owning one consumer: every call to the consumer is run there, in order."""

    def __init__(self, make: Callable[[], KafkaConsumer], name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.assigned: frozenset[TopicPartition] = frozenset()
        self.consumer: KafkaConsumer = self._pool.submit(make).result()

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the owner thread and wait for its result."""
        return self._pool.submit(self._call, fn, *args).result()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the owner thread without blocking the event loop."""
        return await asyncio.wrap_future(self._pool.submit(self._call, fn, *args))

    def close(self) -> None:
        """Close the consumer (leaving its group) on its thread, then end the thread."""
        self.run(self.consumer.close)
        self._pool.shutdown()

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        finally:
            self.assigned = frozenset(self.consumer.assignment())
