"""API keys in the api-keys topic: the API's key ring, and the key book of the CLI and `make up`."""

from __future__ import annotations

from kafka import KafkaProducer
from kafka.errors import KafkaError
from pydantic import ValidationError

from analytics.control import audit
from analytics.control.scope import visible
from analytics.errors import Conflict, InvalidField, KafkaRefused, NotFound
from analytics.history.store import Store
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


def name_taken(view: KeysView, name: str, account_id: str | None) -> bool:
    """Whether an active key of the same account (or platform) has this name: names identify
    actors in the audit, whose rows also carry the account; other accounts' names stay unseen."""
    return any(k.name == name and k.active and k.account_id == account_id for k in view.all())


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
        if name_taken(self.view, name, account_id):
            raise DisparoError(f"an active key of this account is named {name!r}; pick another")
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

    def ensure(self, secret: str, name: str, role: Role) -> ApiKey | None:
        """Register a key whose secret is already known (kept by `make up`) if Kafka has no
        record of it; None if it was revoked (a revoked key is never made active again)."""
        found = self.view.holder(secret)
        if found is not None:
            return found if found.active else None
        key = record_for(secret, name, role)
        self.save(key)
        return key


class KeyRing:
    """The API's keys: made and revoked by admins, audited, seen back by this replica."""

    def __init__(self, producer: KafkaProducer, topics: Topics, view: KeysView, store: Store):
        self.producer = producer
        self.topic = topics.api_keys
        self.view = view
        self.store = store

    def save(self, key: ApiKey) -> None:
        """Write one key record (a portal link's) and wait until this replica holds it."""
        self._save(key)

    def _save(self, key: ApiKey) -> None:
        try:
            save_key(self.producer, self.topic, self.view, key)
        except KafkaUnavailable as exc:
            raise KafkaRefused(str(exc)) from exc

    def create(
        self, name: str, role: Role, account_id: str | None, actor: ApiKey
    ) -> tuple[str, ApiKey]:
        """A new key (shown once by the caller); an account's admin makes its own account's."""
        if actor.account_id is not None:
            if account_id is not None and account_id != actor.account_id:
                raise InvalidField(
                    "account_id", f"this key manages account {actor.account_id!r} only"
                )
            account_id = actor.account_id
        if name_taken(self.view, name, account_id):
            raise Conflict(
                f"an active key of this account is named {name!r}; names identify actors "
                "in the audit"
            )
        secret, key = new_key(name, role, account_id)
        self._save(key)
        details = {"name": key.name, "role": key.role}
        audit.record(self.store, actor, "key.create", key.id, details, key.account_id)
        return secret, key

    def visible_to(self, actor: ApiKey) -> list[ApiKey]:
        """Every key this admin may see, revoked ones included."""
        return [k for k in self.view.all() if visible(actor, k.account_id)]

    def revoke(self, key_id: str, actor: ApiKey) -> ApiKey:
        """Revoke a key (never the last active platform admin key)."""
        key = self.view.get(key_id)
        if key is None or not visible(actor, key.account_id):
            raise NotFound(f"no key with id {key_id}; GET /api/v1/keys lists them")
        if not key.active:
            return key
        platform = [
            k for k in self.view.all() if k.active and k.role == "admin" and not k.account_id
        ]
        if key.role == "admin" and not key.account_id and len(platform) == 1:
            raise Conflict("this is the last active platform admin key; create another one first")
        gone = revoked(key)
        self._save(gone)
        details = {"name": key.name, "role": key.role}
        audit.record(self.store, actor, "key.revoke", key.id, details, key.account_id)
        return gone
