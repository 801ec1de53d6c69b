"""The local stack's demo: a webhook receiver on loopback, two rules and a few events."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

from aiohttp import web

from disparo.schemas import now_utc

log = logging.getLogger(__name__)


def serve_receiver(port: int) -> None:
    """A receiver that answers 200 on /ok and 503 on /fail, logging what it gets."""

    async def ok(request: web.Request) -> web.Response:
        body = await request.read()
        log.info(
            "received %s webhook-id=%s %d bytes",
            request.path,
            request.headers.get("webhook-id"),
            len(body),
        )
        return web.json_response({"received": True})

    async def fail(request: web.Request) -> web.Response:
        await request.read()
        log.info("refused %s webhook-id=%s", request.path, request.headers.get("webhook-id"))
        return web.json_response({"error": "demo endpoint that always fails"}, status=503)

    app = web.Application()
    app.add_routes(
        [web.post("/ok", ok), web.post("/fail", fail), web.get("/healthz", lambda _: _healthy())]
    )
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def _healthy() -> web.Response:
    await asyncio.sleep(0)
    return web.json_response({"status": "ok"})


def demo_rules(receiver: str) -> list[dict[str, Any]]:
    """Two rules: dispatched orders to a healthy endpoint, tracking updates to a failing one."""
    return [
        {
            "name": "demo: orders dispatched",
            "event_types": ["order.dispatched"],
            "url": f"{receiver}/ok",
            "timeout_s": 5,
            "max_attempts": 3,
        },
        {
            "name": "demo: tracking (failing endpoint)",
            "event_types": ["tracking.updated"],
            "url": f"{receiver}/fail",
            "timeout_s": 5,
            "max_attempts": 3,
        },
    ]


def demo_events(count: int = 6) -> list[dict[str, Any]]:
    """A few order events alternating between the two demo rules' event types."""
    events = []
    for i in range(count):
        dispatched = i % 2 == 0
        events.append(
            {
                "event_id": str(uuid.uuid4()),
                "event_type": "order.dispatched" if dispatched else "tracking.updated",
                "order_id": f"DEMO-{1000 + i // 2}",
                "order_status": "dispatched" if dispatched else "in_transit",
                "occurred_at": now_utc().isoformat(),
                "payload": {"carrier": "demo-express", "tracking_code": f"BR{i:08d}"},
            }
        )
    return events


def as_json(value: Any) -> bytes:
    return json.dumps(value).encode()
