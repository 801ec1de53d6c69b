"""Routes whose JSON bodies are parsed on a worker thread, never on the event loop.

FastAPI reads a JSON body with `await request.json()`, which parses it on the loop: a
multi-megabyte body (10,000 order numbers, 1,000 events) would hold every other request,
`/healthz` included, for the time of the parse.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute


class ThreadedJsonRequest(Request):
    """A request whose `json()` parses the body on a worker thread."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            self._json = await asyncio.to_thread(json.loads, body)
        return self._json


class ThreadedJsonRoute(APIRoute):
    """An API route that hands its endpoint a `ThreadedJsonRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def threaded(request: Request) -> Response:
            return await handler(ThreadedJsonRequest(request.scope, request.receive))

        return threaded


def api_router(**options: Any) -> APIRouter:
    """A router whose routes parse JSON bodies off the event loop."""
    return APIRouter(route_class=ThreadedJsonRoute, **options)
