"""A small HTTP side server for a worker process: /metrics, /healthz, /readyz, /debug/stacks."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from disparo.errors import DisparoError
from disparo.stacks import thread_stacks

# Every service answers these; probes, scrape configs and manifests name them.
METRICS_PATH = "/metrics"
HEALTH_PATH = "/healthz"  # the process is alive: liveness
READY_PATH = "/readyz"  # it holds partitions and its stores answer: readiness
STACKS_PATH = "/debug/stacks"  # every thread's stack, to see where a stuck service waits


async def start_ops_server(host: str, port: int, ready: Callable[[], bool]) -> web.AppRunner | None:
    """Serve the operational endpoints on host:port (port 0 disables); return the runner."""
    if port == 0:
        return None

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"content-type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ok = ready()
        return web.json_response({"ready": ok}, status=200 if ok else 503)

    async def stacks(_: web.Request) -> web.Response:
        return web.Response(text=thread_stacks())

    app = web.Application()
    app.add_routes(
        [
            web.get(METRICS_PATH, metrics),
            web.get(HEALTH_PATH, healthz),
            web.get(READY_PATH, readyz),
            web.get(STACKS_PATH, stacks),
        ]
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise DisparoError(
            f"cannot serve /metrics on {host}:{port} ({exc.strerror}); is another process "
            "using it? Set a free port in the service's DISPARO_*_PORT setting"
        ) from exc
    return runner
