"""A small HTTP side server for a worker process: /metrics, /healthz and /readyz."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from disparo.errors import DisparoError


async def start_ops_server(port: int, ready: Callable[[], bool]) -> web.AppRunner | None:
    """Serve the operational endpoints on 127.0.0.1:port (0 disables); return the runner."""
    if port == 0:
        return None

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"content-type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ok = ready()
        return web.json_response({"ready": ok}, status=200 if ok else 503)

    app = web.Application()
    app.add_routes(
        [web.get("/metrics", metrics), web.get("/healthz", healthz), web.get("/readyz", readyz)]
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    except OSError as exc:
        await runner.cleanup()
        raise DisparoError(
            f"cannot serve /metrics on 127.0.0.1:{port} ({exc.strerror}); is another process "
            "using it? Set a free port in the service's DISPARO_*_PORT setting"
        ) from exc
    return runner
