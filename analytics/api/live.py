"""The live history: `GET /api/v1/dispatches/stream`, each new attempt row as Server-Sent Events.

The list's filters and the key's account scope apply to the stream as to the list. Each
row is `data: <the list item as JSON>`; a comment line every `KEEP_ALIVE_S` keeps proxies
from closing a quiet stream; a client too slow to read gets `event: dropped` and the end
of its stream (`analytics.control.live_feed` says the bounds).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

from fastapi.responses import StreamingResponse

from analytics.api.deps import Reader, Svc
from analytics.api.dispatches import Filter
from analytics.api.routing import api_router
from analytics.control.live_feed import LiveFeed, Stream
from analytics.errors import KafkaRefused
from analytics.history.views import HistoryFilter

router = api_router(tags=["dispatches"])
KEEP_ALIVE_S = 15.0
RECONNECT_MS = 2000  # how long a browser's EventSource waits before it reconnects


@router.get(
    "/api/v1/dispatches/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "new attempt rows"}},
)
async def stream_dispatches(key: Reader, svc: Svc, f: Filter) -> StreamingResponse:
    """New attempt rows of the filter as they are written (Server-Sent Events)."""
    if svc.live is None:
        raise KafkaRefused("this API has no reader of the outcomes topic")
    stream = svc.live.open(key.id, accepts(f))
    try:
        await asyncio.to_thread(svc.live.wait_reading)
    except KafkaRefused:
        svc.live.close(stream)
        raise
    return StreamingResponse(
        _events(svc.live, stream),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def accepts(f: HistoryFilter) -> Callable[[dict[str, Any]], bool]:
    """Whether a new row belongs to the filtered list (its tab, order or search key's orders
    as found when the stream opened, rule, account)."""
    wanted = {
        "status": None if f.status == "all" else f.status,
        "order_id": f.order_id,
        "reason": f.reason,
        "rule_id": f.rule_id,
        "account_id": f.account_id,
    }
    wanted = {k: v for k, v in wanted.items() if v is not None}
    start = f.period.start

    def accept(row: dict[str, Any]) -> bool:
        for k, v in wanted.items():  # a tuple: the orders a search key found, any of them
            if (row[k] not in v) if isinstance(v, tuple) else (row[k] != v):
                return False
        return datetime.fromisoformat(row["dispatched_at"]) >= start

    return accept


async def _events(feed: LiveFeed, stream: Stream) -> AsyncIterator[str]:
    try:
        yield f"retry: {RECONNECT_MS}\n: live\n\n"
        while True:
            rows = await stream.next_rows(KEEP_ALIVE_S)
            if stream.dropped:
                reason = {"reason": "too slow: rows waited unread; reconnect and reload"}
                yield f"event: dropped\ndata: {json.dumps(reason)}\n\n"
                return
            if not rows:
                yield ": keep-alive\n\n"
            for row in rows:
                yield f"data: {json.dumps(row, separators=(',', ':'))}\n\n"
    finally:
        feed.close(stream)
