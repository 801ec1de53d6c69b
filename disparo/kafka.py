"""Kafka clients configured the one way disparo uses them; errors translated here."""

from __future__ import annotations

import logging
import time
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from disparo.errors import KafkaUnavailable
from disparo.settings import KernelSettings
from disparo.topics import MAX_RECORD_BYTES, Topics

log = logging.getLogger(__name__)
# kafka-python doubles the wait between reconnects up to 30 s, so a broker back after a
# 10 s restart was first retried up to 13 s later and the pipeline stood still meanwhile
# (bench/soak.py). Capped at 1 s, every client is back within about a second of the broker.
CLIENT_DEFAULTS: dict[str, Any] = {"reconnect_backoff_max_ms": 1000}


def make_producer(settings: KernelSettings, **overrides: Any) -> KafkaProducer:
    """A durable producer: acks from all in-sync replicas, idempotent, lightly batched."""
    options: dict[str, Any] = {
        **CLIENT_DEFAULTS,
        "bootstrap_servers": settings.bootstrap_servers,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        "compression_type": None,
        "client_id": "disparo",
        # Above MAX_RECORD_BYTES (the topics' limit), so the broker, not the client, decides.
        "max_request_size": MAX_RECORD_BYTES + 1024 * 1024,
    }
    options.update(overrides)
    try:
        return KafkaProducer(**options)
    except KafkaError as exc:
        raise KafkaUnavailable(f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}") from exc


def make_admin(settings: KernelSettings, timeout_s: float = 30.0) -> KafkaAdminClient:
    """An admin client, retried until the cluster answers or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return KafkaAdminClient(
                **CLIENT_DEFAULTS,
                bootstrap_servers=settings.bootstrap_servers,
                client_id="disparo-admin",
            )
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise KafkaUnavailable(
                    f"Kafka at {settings.kafka_bootstrap} did not answer in {timeout_s:.0f}s: {exc}"
                ) from exc
            time.sleep(0.5)


def ensure_topics(settings: KernelSettings) -> list[str]:
    """Create the contract's topics that do not exist yet; return the names created."""
    replication = settings.topic_replication
    # With replicas, an acks=all write needs all but one in sync: one broker may be down.
    durability = {"min.insync.replicas": str(replication - 1)} if replication > 1 else {}
    admin = make_admin(settings)
    try:
        existing = set(admin.list_topics())
        tiers = [t.name for t in settings.retry_tiers]
        specs = Topics(settings.topic_prefix).specs(tiers)
        wanted = [s for s in specs if s.name not in existing]
        created = []
        for spec in wanted:
            config = {**spec.config, **durability}
            topic = NewTopic(spec.name, spec.partitions, replication, topic_configs=config)
            try:
                admin.create_topics([topic])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
        _wait_for_leaders(admin, [s.name for s in wanted])
        return created
    except KafkaError as exc:
        raise KafkaUnavailable(f"cannot create topics: {exc}") from exc
    finally:
        admin.close()


def _wait_for_leaders(admin: KafkaAdminClient, names: list[str], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while names and time.monotonic() < deadline:
        described = admin.describe_topics(names)
        if all(
            t.get("error_code", 0) == 0
            and t["partitions"]
            and all(p.get("leader", -1) >= 0 for p in t["partitions"])
            for t in described
        ):
            return
        time.sleep(0.2)
    if names:
        raise KafkaUnavailable(f"topics {names} have no leader after {timeout_s:.0f}s")
