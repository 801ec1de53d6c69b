"""HTTP ingest: `POST /api/v1/events` with one OrderEvent or a list of them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Depends

from analytics.api.deps import INGESTER, Ingester, Svc
from analytics.api.routing import api_router
from analytics.control.ingest import checked_events

router = api_router(tags=["events"], dependencies=[Depends(INGESTER)])


@router.post("/api/v1/events", status_code=202)
def ingest_events(
    body: Annotated[Any, Body(description="One OrderEvent, or a list of up to 1,000")],
    key: Ingester,
    svc: Svc,
) -> dict[str, Any]:
    """Validate every event, publish them all, and answer once Kafka has them."""
    events = checked_events(body, key)
    svc.intake.publish(events)
    return {"accepted": len(events), "event_ids": [str(e.event_id) for e in events]}
