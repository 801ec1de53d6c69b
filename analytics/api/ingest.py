"""HTTP ingest: `POST /api/v1/events` with one OrderEvent or a list of them."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends

from analytics.api.deps import INGESTER, Ingester, Svc
from analytics.control.ingest import checked_events

router = APIRouter(tags=["events"], dependencies=[Depends(INGESTER)])


@router.post("/api/v1/events", status_code=202)
async def ingest_events(
    body: Annotated[Any, Body(description="One OrderEvent, or a list of up to 1,000")],
    key: Ingester,
    svc: Svc,
) -> dict[str, Any]:
    """Validate every event, publish them all, and answer once Kafka has them."""
    events = await asyncio.to_thread(checked_events, body, key)
    await asyncio.to_thread(svc.intake.publish, events)
    return {"accepted": len(events), "event_ids": [str(e.event_id) for e in events]}
