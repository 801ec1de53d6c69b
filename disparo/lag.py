"""Consumer-group lag as operators mean it: the log end minus the group's committed offset.

Measured with clients of its own (an admin client for the committed offsets, a group-less
consumer for the log ends), on a thread of its own: a group member that never got an
assignment, or stalled, still shows its whole backlog, and a slow broker never holds up the
member. A partition the group never committed counts from its first offset.
"""

from __future__ import annotations

import logging
import threading
import time

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from prometheus_client import Gauge

from disparo.consumer import REQUEST_TIMEOUT_MS, plain_consumer
from disparo.errors import KafkaUnavailable
from disparo.kafka import client_options
from disparo.settings import KernelSettings

log = logging.getLogger(__name__)
CONSUMER_LAG = Gauge(
    "disparo_consumer_lag",
    "Records of a partition the group has not committed yet (log end minus committed offset).",
    ["group", "topic", "partition"],
)


def group_backlog(
    admin: KafkaAdminClient, probe: KafkaConsumer, group: str, topics: list[str]
) -> dict[TopicPartition, int]:
    """Per partition of `topics`: records after the group's committed offset."""
    partitions = [
        TopicPartition(topic, p)
        for topic in topics
        for p in sorted(probe.partitions_for_topic(topic) or ())
    ]
    if not partitions:
        return {}
    committed = admin.list_consumer_group_offsets(group, partitions=partitions)
    ends = probe.end_offsets(partitions)
    starts = probe.beginning_offsets(partitions)
    backlog = {}
    for tp in partitions:
        meta = committed.get(tp)
        done = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
        backlog[tp] = max(0, ends[tp] - done)
    return backlog


def lag_clients(settings: KernelSettings, name: str) -> tuple[KafkaAdminClient, KafkaConsumer]:
    """The admin client and group-less consumer that measure lag (owned by their caller)."""
    admin = KafkaAdminClient(
        **client_options(settings),
        client_id=f"{name}-lag-admin",
        request_timeout_ms=REQUEST_TIMEOUT_MS,
    )
    try:
        probe = plain_consumer(settings, f"{name}-lag")
    except (KafkaError, KafkaUnavailable):
        admin.close()
        raise
    return admin, probe


class GroupLag:
    """Measures one group's lag every `every_s` seconds on its own thread; exports the gauge."""

    def __init__(
        self, settings: KernelSettings, group: str, topics: list[str], every_s: float = 5.0
    ) -> None:
        self.settings = settings
        self.group = group
        self.topics = topics
        self.every_s = every_s
        self.backlog: dict[TopicPartition, int] | None = None  # None until first measured
        self.measured_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lag-{group}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=REQUEST_TIMEOUT_MS / 1000 + 5)

    def total(self) -> int | None:
        """Records the group has still to commit, None before the first measurement."""
        backlog = self.backlog
        return None if backlog is None else sum(backlog.values())

    def _run(self) -> None:
        clients = None
        while not self._stop.is_set():
            try:
                if clients is None:
                    clients = lag_clients(self.settings, self.group)
                self._publish(group_backlog(*clients, self.group, self.topics))
            except (KafkaError, KafkaUnavailable) as exc:  # the broker is away: keep the figures
                log.info("lag of %s not measured: %s", self.group, exc)
            self._stop.wait(self.every_s)
        if clients is not None:
            clients[0].close()
            clients[1].close()

    def _publish(self, backlog: dict[TopicPartition, int]) -> None:
        previous = self.backlog or {}
        for tp, lag in backlog.items():
            CONSUMER_LAG.labels(self.group, tp.topic, str(tp.partition)).set(lag)
        for gone in previous.keys() - backlog.keys():
            CONSUMER_LAG.remove(self.group, gone.topic, str(gone.partition))
        self.backlog = backlog
        self.measured_at = time.monotonic()
