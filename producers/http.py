"""HTTP ingest: `POST /api/v1/events` with one OrderEvent or a list of them."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from pydantic import TypeAdapter, ValidationError

from disparo.access import ApiKey, Permission
from disparo.accounts_view import AccountsView
from disparo.api_access import allow
from disparo.errors import KafkaUnavailable
from disparo.rate_limit import RateLimiter, first_refusal
from disparo.schemas import OrderEvent, describe
from disparo.topics import MAX_EVENT_BYTES
from producers.publish import Publisher

INGESTER = allow(Permission.INGEST)
router = APIRouter(tags=["events"], dependencies=[Depends(INGESTER)])
MAX_EVENTS = 1000
_events = TypeAdapter(list[OrderEvent])


def _of_account(item: Any, account_id: str, index: int) -> Any:
    """An account key publishes for its own account: events without one get it."""
    if not isinstance(item, dict):
        return item  # validation below says what is wrong with it
    sent = item.get("account_id", account_id)
    if sent != account_id:
        raise HTTPException(
            422, f"event {index}: account_id {sent!r}: this key publishes for {account_id!r} only"
        )
    return {**item, "account_id": account_id}


def _within_limits(request: Request, events: list[OrderEvent]) -> None:
    """Each account's events per second (all or nothing: a refused request publishes none)."""
    accounts: AccountsView | None = getattr(request.app.state, "accounts", None)
    limiter: RateLimiter | None = getattr(request.app.state, "limiter", None)
    if accounts is None or limiter is None:
        return
    wanted = {
        account_id: (n, accounts.of(account_id).limits.events_per_second)
        for account_id, n in Counter(e.account_id for e in events).items()
    }
    refusal = first_refusal(limiter, wanted, "events", "second")
    if refusal is None:
        return
    if refusal.retry_after_s is None:
        raise HTTPException(413, refusal.message)
    raise HTTPException(429, refusal.message, headers={"Retry-After": str(refusal.retry_after_s)})


def get_publisher(request: Request) -> Publisher:
    publisher: Publisher = request.app.state.publisher
    return publisher


@router.post("/api/v1/events", status_code=202)
def ingest_events(
    body: Annotated[Any, Body(description="One OrderEvent, or a list of up to 1,000")],
    publisher: Annotated[Publisher, Depends(get_publisher)],
    key: Annotated[ApiKey, Depends(INGESTER)],
    request: Request,
) -> dict[str, Any]:
    """Validate every event, publish them all, and answer once Kafka has them."""
    items = body if isinstance(body, list) else [body]
    if not items:
        raise HTTPException(422, "send one event or a non-empty list of events")
    if len(items) > MAX_EVENTS:
        raise HTTPException(413, f"at most {MAX_EVENTS} events per request, got {len(items)}")
    if key.account_id is not None:
        items = [_of_account(item, key.account_id, n) for n, item in enumerate(items)]
    try:
        events = _events.validate_python(items)
    except ValidationError as exc:
        raise HTTPException(422, f"invalid event: {describe(exc)}") from None
    for index, event in enumerate(events):
        size = len(event.model_dump_json())  # as it goes on the topic, after normalisation
        if size > MAX_EVENT_BYTES:
            raise HTTPException(
                413,
                f"event {index} is {size} bytes once normalised, over the "
                f"{MAX_EVENT_BYTES // 1024} KiB limit; link large documents from the payload",
            )
    _within_limits(request, events)
    try:
        publisher.publish_many(events)
    except KafkaUnavailable as exc:
        raise HTTPException(503, f"events not accepted, Kafka is unavailable: {exc}") from exc
    return {"accepted": len(events), "event_ids": [str(e.event_id) for e in events]}
