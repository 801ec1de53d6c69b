"""The operational HTTP endpoints, served one way by the dispatcher and the workers.

/metrics, /healthz, /readyz and /debug/stacks on a small aiohttp server, plus any JSON pages
a service adds (the dispatcher's /rules). The analytics process serves the same paths from
its FastAPI app, on the API's port.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from disparo.errors import DisparoError
from disparo.stacks import thread_stacks

# Every service answers these; probes, scrape configs and manifests name them.
METRICS_PATH = "/metrics"
HEALTH_PATH = "/healthz"  # the process is alive: liveness
READY_PATH = "/readyz"  # it holds partitions and its stores answer: readiness
STACKS_PATH = "/debug/stacks"  # every thread's stack, to see where a stuck service waits
STACKS_NEED = f"{STACKS_PATH} needs a platform admin key: send `Authorization: Bearer <key>`"


async def start_ops_server(
    host: str,
    port: int,
    ready: Callable[[], bool],
    pages: Mapping[str, Callable[[], Any]] | None = None,
    admin: Callable[[str | None], bool] | None = None,
) -> web.AppRunner | None:
    """Serve the operational endpoints on host:port (port 0 disables); return the runner.

    `pages` maps more paths to functions whose result is answered as JSON; `admin` says
    whether an Authorization header is a platform admin's, which /debug/stacks needs.
    """
    if port == 0:
        return None

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"content-type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ok = ready()
        return web.json_response({"ready": ok}, status=200 if ok else 503)

    async def stacks(request: web.Request) -> web.Response:
        if admin is None or not admin(request.headers.get("Authorization")):
            return web.json_response({"error": STACKS_NEED}, status=401)
        return web.Response(text=thread_stacks())

    def page(build: Callable[[], Any]) -> Callable[[web.Request], Any]:
        async def answer(_: web.Request) -> web.Response:
            return web.json_response(build())

        return answer

    app = web.Application()
    app.add_routes(
        [
            web.get(METRICS_PATH, metrics),
            web.get(HEALTH_PATH, healthz),
            web.get(READY_PATH, readyz),
            web.get(STACKS_PATH, stacks),
            *(web.get(path, page(build)) for path, build in (pages or {}).items()),
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
