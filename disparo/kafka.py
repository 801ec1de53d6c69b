"""Kafka clients configured the one way disparo uses them; errors translated here."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.conn import BrokerConnection
from kafka.errors import KafkaError, SaslAuthenticationFailedError, TopicAlreadyExistsError

from disparo.errors import KafkaCredentialsRefused, KafkaUnavailable
from disparo.settings import KernelSettings
from disparo.topics import MAX_RECORD_BYTES, Topics

log = logging.getLogger(__name__)
# kafka-python doubles the wait between reconnects up to 30 s, so a broker back after a
# 10 s restart was first retried up to 13 s later and the pipeline stood still meanwhile
# (bench/soak.py). Capped at 1 s, every client is back within about a second of the broker.
CLIENT_DEFAULTS: dict[str, Any] = {"reconnect_backoff_max_ms": 1000}
AUTH_ERRORS = (SaslAuthenticationFailedError,)


def client_options(settings: KernelSettings) -> dict[str, Any]:
    """What every kafka-python client of a process gets: reconnects and security."""
    options: dict[str, Any] = {
        **CLIENT_DEFAULTS,
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=password.get_secret_value() if password else "",
        )
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_check_hostname"] = True
        if settings.kafka_ca_file:
            options["ssl_cafile"] = settings.kafka_ca_file
    return options


def unreachable(settings: KernelSettings, exc: BaseException) -> KafkaUnavailable:
    """The error for a client that could not start; a refused SASL login is named as such.

    kafka-python reports a refused login as a failed version probe
    (`IncompatibleBrokerVersion`), so with SASL one connection is opened by hand to tell.
    """
    if settings.kafka_security_protocol.startswith("SASL_"):
        refused = _login_refused(settings)
        if refused is not None:
            return refused_credentials(settings, refused)
    return KafkaUnavailable(f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}")


class _LoginProbe(BrokerConnection):  # type: ignore[misc]
    """One connection that remembers why it was closed (kafka-python only logs it)."""

    first_error: BaseException | None = None

    def close(self, error: BaseException | None = None) -> None:
        if error is not None and self.first_error is None:
            self.first_error = error
        super().close(error)


def _login_refused(settings: KernelSettings) -> BaseException | None:
    options = client_options(settings)
    options.pop("bootstrap_servers")
    host, _, port = settings.bootstrap_servers[0].rpartition(":")
    probe = _LoginProbe(host, int(port), socket.AF_UNSPEC, **options)
    try:
        probe.connect_blocking(10)
    except KafkaError as exc:
        probe.first_error = probe.first_error or exc
    finally:
        probe.close()
    refused = probe.first_error
    return refused if isinstance(refused, AUTH_ERRORS) else None


def check_login(settings: KernelSettings) -> None:
    """With SASL, stop at once on a refused login (the clients would retry it for minutes)."""
    if settings.kafka_security_protocol.startswith("SASL_"):
        refused = _login_refused(settings)
        if refused is not None:
            raise refused_credentials(settings, refused)


def refused_credentials(settings: KernelSettings, exc: BaseException) -> KafkaCredentialsRefused:
    """The error a service stops with when the brokers refuse its credentials."""
    return KafkaCredentialsRefused(
        f"Kafka at {settings.kafka_bootstrap} refused the credentials of "
        f"DISPARO_KAFKA_SASL_USERNAME={settings.kafka_sasl_username!r} "
        f"({settings.kafka_sasl_mechanism}): {exc}; check DISPARO_KAFKA_SASL_PASSWORD"
    )


def make_producer(settings: KernelSettings, **overrides: Any) -> KafkaProducer:
    """A durable producer: acks from all in-sync replicas, idempotent, lightly batched."""
    options: dict[str, Any] = {
        **client_options(settings),
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
        raise unreachable(settings, exc) from exc


def make_admin(settings: KernelSettings, timeout_s: float = 30.0) -> KafkaAdminClient:
    """An admin client, retried until the cluster answers or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    diagnosed = False
    while True:
        try:
            return KafkaAdminClient(**client_options(settings), client_id="disparo-admin")
        except KafkaError as exc:
            if not diagnosed:  # a login probe costs a connection: one is enough to tell
                diagnosed = True
                diagnosis = unreachable(settings, exc)
                if isinstance(diagnosis, KafkaCredentialsRefused):
                    raise diagnosis from exc
            if time.monotonic() > deadline:
                raise KafkaUnavailable(
                    f"Kafka at {settings.kafka_bootstrap} did not answer in {timeout_s:.0f}s: {exc}"
                ) from exc
            time.sleep(0.5)


def ensure_topics(settings: KernelSettings) -> list[str]:
    """Create the contract's topics that do not exist yet; return their names."""
    replication = settings.topic_replication
    # With replicas, an acks=all write needs all but one in sync: one broker may be down.
    durability = {"min.insync.replicas": str(replication - 1)} if replication > 1 else {}
    admin = make_admin(settings)
    try:
        existing = set(admin.list_topics())
        tiers = [t.name for t in settings.retry_tiers]
        specs = Topics(settings.topic_prefix).specs(tiers)
        wanted = [
            NewTopic(s.name, s.partitions, replication, topic_configs={**s.config, **durability})
            for s in specs
            if s.name not in existing
        ]
        _create(admin, wanted)
        _wait_for_leaders(admin, [t.name for t in wanted])
        return [t.name for t in wanted]
    except KafkaError as exc:
        raise KafkaUnavailable(f"cannot create topics: {exc}") from exc
    finally:
        admin.close()


def _create(admin: KafkaAdminClient, topics: list[NewTopic]) -> None:
    """Create `topics` in one request; one by one if another client created some meanwhile."""
    if not topics:
        return
    try:
        admin.create_topics(topics)
        return
    except TopicAlreadyExistsError:
        pass  # the broker created the others; asking again surfaces any other error
    for topic in topics:
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics([topic])


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
