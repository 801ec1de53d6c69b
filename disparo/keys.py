"""Writing API keys to the api-keys topic (the CLI, `make up` and the API share this)."""

from __future__ import annotations

from kafka import KafkaProducer
from kafka.errors import KafkaError
from pydantic import ValidationError

from disparo.access import ApiKey, Role, new_key, record_for, revoked
from disparo.errors import DisparoError, KafkaUnavailable
from disparo.kafka import ensure_topics, make_producer
from disparo.keys_view import KeysView
from disparo.schemas import describe
from disparo.settings import KernelSettings
from disparo.topics import Topics


def publish_key(producer: KafkaProducer, topic: str, key: ApiKey) -> tuple[int, int]:
    """Write one key record (new or revoked); the partition and offset it landed at."""
    try:
        meta = producer.send(topic, key=key.id.encode(), value=key.model_dump_json().encode())
        sent = meta.get(30)
    except KafkaError as exc:
        raise KafkaUnavailable(f"key not saved, Kafka is unavailable: {exc}") from exc
    return sent.partition, sent.offset


def name_taken(view: KeysView, name: str) -> bool:
    """Whether an active key has this name (names identify actors in the audit)."""
    return any(k.name == name and k.active for k in view.all())


def save_key(producer: KafkaProducer, topic: str, view: KeysView, key: ApiKey) -> None:
    """Write one key record and wait until `view` holds it."""
    partition, offset = publish_key(producer, topic, key)
    view.wait_for(partition, offset, timeout_s=10)


class KeyBook:
    """The api-keys topic for the CLI and the launcher: read it whole, then write to it."""

    def __init__(self, settings: KernelSettings) -> None:
        ensure_topics(settings)
        self.settings = settings
        self.topic = Topics(settings.topic_prefix).api_keys
        self.view = KeysView(settings)
        self.view.start()
        # Made on the first write: kafka-python 2.3 blocks the whole close timeout when an
        # idempotent producer is closed before its producer id arrived (`keys list` took 10 s).
        self._producer: KafkaProducer | None = None

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(10)
        self.view.stop()

    def save(self, key: ApiKey) -> None:
        if self._producer is None:
            self._producer = make_producer(self.settings, client_id="disparo-keys")
        save_key(self._producer, self.topic, self.view, key)

    def create(self, name: str, role: Role, account_id: str | None = None) -> tuple[str, ApiKey]:
        """A new key (shown once by the caller) and its stored record."""
        if name_taken(self.view, name):
            raise DisparoError(f"an active key is named {name!r}; pick another name")
        try:
            secret, key = new_key(name, role, account_id)
        except ValidationError as exc:
            raise DisparoError(f"cannot make that key: {describe(exc)}") from None
        self.save(key)
        return secret, key

    def revoke(self, key_id: str) -> ApiKey:
        key = self.view.get(key_id)
        if key is None:
            raise DisparoError(f"no key with id {key_id}; `disparo keys list` shows them")
        if key.active:
            key = revoked(key)
            self.save(key)
        return key

    def ensure(self, secret: str, name: str, role: Role) -> ApiKey:
        """Register a key whose secret is already known (kept by `make up`) if it is not."""
        found = self.view.holder(secret)
        if found is not None and found.active:
            return found
        key = record_for(secret, name, role)
        self.save(key)
        return key
