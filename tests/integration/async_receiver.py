"""A webhook receiver on asyncio (aiohttp), for tests that time what a receiver saw.

The threaded `Receiver` starts a thread per connection: with a thousand slow requests in
flight, a new request waits tens of milliseconds for its thread, which would count as the
platform's delay. This one answers every request on one event loop: /wait50 after 50 ms,
/slow* after 3 s, anything else at once; `plan` gives one webhook-id its own statuses.
"""

from __future__ import annotations

import asyncio
import threading
import time

from aiohttp import web

from tests.integration.receiver import Received


class AsyncReceiver:
    """Runs its own loop on a thread, on 127.0.0.1; `on(path)` lists what arrived there."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.plans: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        assert self._started.wait(10), "the receiver did not start"
        self.url = f"http://127.0.0.1:{self.port}"

    def plan(self, webhook_id: str, statuses: list[int]) -> None:
        """Answer this webhook-id's next requests with `statuses`, then 200."""
        with self._lock:
            self.plans[webhook_id] = list(statuses)

    def on(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        arrived, at = time.time(), time.monotonic()
        body = await request.read()
        webhook_id = request.headers.get("webhook-id", "")
        with self._lock:
            planned = self.plans.get(webhook_id)
            status = planned.pop(0) if planned else 200
            headers = {k.lower(): v for k, v in request.headers.items()}
            received = Received(request.path, headers, body, status, at, arrived)
            self.requests.append(received)
        if request.path.startswith("/slow"):
            await asyncio.sleep(3)
        elif request.path.startswith("/wait50"):
            await asyncio.sleep(0.05)
        response = web.Response(status=status, body=b'{"ok":true}', content_type="application/json")
        await response.prepare(request)
        await response.write_eof()
        received.answered = time.time()
        return response

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=2**20)
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=2048)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._started.set()
        self._loop.run_forever()
