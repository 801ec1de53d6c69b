"""The HTTP ingest's domain: events checked (account, size, the account's rate), then
published to order-events and acknowledged by Kafka, all or none."""

from __future__ import annotations

from collections import Counter
from typing import Any

from kafka import KafkaProducer
from pydantic import TypeAdapter, ValidationError

from analytics.control.acked import send_acked
from analytics.control.rate_limit import RateLimiter, first_refusal
from analytics.errors import InvalidField, RateLimited, TooLarge
from disparo.access import ApiKey
from disparo.accounts_view import AccountsView
from disparo.schemas import OrderEvent, describe
from disparo.topics import MAX_EVENT_BYTES, Topics

MAX_EVENTS = 1000
_events = TypeAdapter(list[OrderEvent])


def _of_account(item: Any, account_id: str, index: int) -> Any:
    """An account key publishes for its own account: events without one get it."""
    if not isinstance(item, dict):
        return item  # validation below says what is wrong with it
    sent = item.get("account_id", account_id)
    if sent != account_id:
        raise InvalidField(
            f"{index}.account_id", f"{sent!r}: this key publishes for {account_id!r} only"
        )
    return {**item, "account_id": account_id}


def checked_events(body: Any, key: ApiKey) -> list[OrderEvent]:
    """The request's events, validated, of the key's account, each within the size limit."""
    items = body if isinstance(body, list) else [body]
    if not items:
        raise InvalidField("body", "send one event or a non-empty list of events")
    if len(items) > MAX_EVENTS:
        raise TooLarge(f"at most {MAX_EVENTS} events per request, got {len(items)}")
    if key.account_id is not None:
        items = [_of_account(item, key.account_id, n) for n, item in enumerate(items)]
    try:
        events = _events.validate_python(items)
    except ValidationError as exc:
        raise InvalidField("body", f"invalid event: {describe(exc)}") from None
    for index, event in enumerate(events):
        size = len(event.model_dump_json())  # as it goes on the topic, after normalisation
        if size > MAX_EVENT_BYTES:
            raise TooLarge(
                f"event {index} is {size} bytes once normalised, over the "
                f"{MAX_EVENT_BYTES // 1024} KiB limit; link large documents from the payload"
            )
    return events


class Intake:
    """Publishes checked events within each account's events-per-second limit."""

    def __init__(
        self,
        producer: KafkaProducer,
        topics: Topics,
        accounts: AccountsView,
        limiter: RateLimiter,
    ) -> None:
        self.producer = producer
        self.topic = topics.order_events
        self.accounts = accounts
        self.limiter = limiter

    def _within_limits(self, events: list[OrderEvent]) -> None:
        """Each account's events per second (all or nothing: a refused request publishes none)."""
        wanted = {
            account_id: (n, self.accounts.of(account_id).limits.events_per_second)
            for account_id, n in Counter(e.account_id for e in events).items()
        }
        refusal = first_refusal(self.limiter, wanted, "events", "second")
        if refusal is None:
            return
        if refusal.retry_after_s is None:
            raise TooLarge(refusal.message)
        raise RateLimited(refusal.message, refusal.retry_after_s)

    def publish(self, events: list[OrderEvent]) -> None:
        """Publish every event keyed by order id once its account's limit allows them."""
        self._within_limits(events)
        records = [(e.order_id.encode(), e.model_dump_json().encode()) for e in events]
        send_acked(self.producer, self.topic, records, "events not accepted")
