"""One owner for the background duties among analytics processes, chosen by Kafka.

Every analytics process joins one consumer group on the one-partition control topic; the
group coordinator gives that partition to exactly one live member, which runs the duties
(held release and expiry, the warden, rule health and its notifications). When the owner
leaves, the partition moves at once; when it dies, after the session timeout. A member that
has not polled successfully for a session timeout stops its duties whether or not it was
told (it has lost the partition). The group's live members also set each replica's share
of the per-account limits.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Sequence

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from prometheus_client import Gauge

from analytics.control.periodic import Periodic
from disparo.consumer import REQUEST_TIMEOUT_MS, group_consumer, subscribe_when_ready
from disparo.errors import KafkaUnavailable
from disparo.kafka import client_options
from disparo.settings import KernelSettings

log = logging.getLogger(__name__)
POLL_MS = 500  # heartbeats ride on the owner thread's polls
MEMBERS_EVERY_S = 5.0
OWNER = Gauge("disparo_duties_owner", "1 while this analytics process owns the duties.")
MEMBERS = Gauge("disparo_duties_members", "Live analytics processes in the duties group.")


def member_name(port: int) -> str:
    """How this process shows in the group (client id): host, pid and API port."""
    return f"disparo-analytics-{socket.gethostname()}-{os.getpid()}-api{port}"


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: DutyOwner) -> None:
        self.owner = owner

    def on_partitions_revoked(self, revoked: object) -> None:
        self.owner.release("revoked by the group coordinator")

    def on_partitions_assigned(self, assigned: Sequence[object]) -> None:
        if assigned:
            self.owner.take()


class DutyOwner:
    """Runs `duties` while this process holds the control topic's partition."""

    def __init__(
        self,
        settings: KernelSettings,
        topic: str,
        group: str,
        name: str,
        duties: Sequence[Periodic],
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.group = group
        self.name = name
        self.duties = list(duties)
        self.owner = False
        self.members = 1  # live members of the group, this one included
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="duties", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Leave the group (another process takes over at once) and stop the duties."""
        self._stop.set()
        self._thread.join(REQUEST_TIMEOUT_MS / 1000 + 10)
        self.release("this process is stopping")  # if the thread could not

    def share(self) -> int:
        """How many live processes share a per-account limit (at least 1)."""
        return max(1, self.members)

    def take(self) -> None:
        with self._lock:
            if self.owner:
                return
            self.owner = True
            OWNER.set(1)
            log.info("%s owns the analytics duties", self.name)
            for duty in self.duties:
                duty.start()

    def release(self, why: str) -> None:
        with self._lock:
            if not self.owner:
                return
            for duty in self.duties:
                duty.stop()
            self.owner = False
            OWNER.set(0)
            log.info("%s no longer owns the analytics duties: %s", self.name, why)

    def _run(self) -> None:
        consumer: KafkaConsumer | None = None
        admin: KafkaAdminClient | None = None
        next_count = 0.0
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = self._join()
                consumer.poll(timeout_ms=POLL_MS)
                if time.monotonic() >= next_count:
                    admin = admin or self._admin()
                    self._count_members(admin)
                    next_count = time.monotonic() + MEMBERS_EVERY_S
            except (KafkaError, KafkaUnavailable) as exc:
                log.warning("duties group not reached: %s", exc)
                self._stop.wait(1.0)
            if (
                consumer is not None
                and _unheard_for(consumer) > self.settings.kafka_session_timeout_s
            ):
                # The coordinator has given the partition to another member by now, told or not.
                self.release("no heartbeat answered for a session timeout (fenced)")
        # Duties stop before the group is left: the next owner, chosen as soon as this
        # member leaves, never overlaps with this one.
        self.release("this process is stopping")
        if consumer is not None:
            consumer.close()  # leaves the group: the next owner is chosen at once
        if admin is not None:
            admin.close()

    def _join(self) -> KafkaConsumer:
        consumer = group_consumer(self.settings, self.group, self.name)
        try:
            subscribe_when_ready(consumer, [self.topic], listener=_Listener(self))
        except (KafkaError, KafkaUnavailable):
            consumer.close()  # the next turn makes a new one
            raise
        return consumer

    def _admin(self) -> KafkaAdminClient:
        return KafkaAdminClient(
            **client_options(self.settings),
            client_id=f"{self.name}-members",
            request_timeout_ms=REQUEST_TIMEOUT_MS,
        )

    def _count_members(self, admin: KafkaAdminClient) -> None:
        [group] = admin.describe_consumer_groups([self.group])
        self.members = max(1, len(group.members))
        MEMBERS.set(self.members)


def _unheard_for(consumer: KafkaConsumer) -> float:
    """Seconds since the group coordinator last answered a heartbeat (or the member joined).

    kafka-python's `poll()` returns empty-handed while the broker is away, so only the
    heartbeat's own clock tells a member that its session has expired.
    """
    heartbeat = consumer._coordinator.heartbeat
    last: float = max(heartbeat.last_receive, heartbeat.last_reset)
    return time.time() - last


def owner_of(admin: KafkaAdminClient, group: str, topic: str) -> str | None:
    """The client id (host, pid, API port) of the member holding the duties, if any."""
    [described] = admin.describe_consumer_groups([group])
    for member in described.members:
        assignment = member.member_assignment
        if assignment is not None and any(t == topic and p for t, p in assignment.assignment):
            return f"{member.client_id} ({member.client_host.lstrip('/')})"
    return None
