"""The management API application: routers, error translation, the page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from analytics.api import (
    accounts,
    audit,
    coverage,
    dispatches,
    health,
    held,
    ingest,
    keys,
    live,
    orders,
    portal,
    resend,
    rule_tools,
    rules,
    sla,
    tasks,
)
from analytics.api.access import KeyFirst, permission_of
from analytics.api.errors import add_error_handlers
from analytics.api.guards import BodyLimit, HostAllowlist, SecurityHeaders
from analytics.control.portal_links import frame_ancestors
from analytics.control.services import Services
from disparo.access import Permission

WEB = Path(__file__).resolve().parent / "web"
ROUTERS = (
    health.router,
    rule_tools.router,  # before rules: /rules/dry-run is not a rule id
    rules.router,
    held.router,
    live.router,  # before dispatches: /dispatches/stream is not a dispatch id
    dispatches.router,
    resend.router,
    coverage.router,
    sla.router,
    orders.router,  # after coverage: /orders/undelivered is not an order number
    keys.router,
    audit.router,
    accounts.router,
    portal.router,
    ingest.router,
    tasks.router,
)
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_app(
    svc: Services,
    extra_routers: Sequence[APIRouter] = (),
    lifespan: Lifespan | None = None,
    allowed_hosts: Sequence[str] = ("127.0.0.1", "localhost"),
) -> FastAPI:
    """The FastAPI app over the given services (and routers a test adds)."""
    app = FastAPI(title="disparo management API", version="1", lifespan=lifespan)
    # Added innermost first: the Host check runs before anything else (DNS rebinding).
    app.add_middleware(BodyLimit)
    app.add_middleware(KeyFirst, keys=svc.key_ring.view)  # before any body is read
    app.add_middleware(SecurityHeaders)
    app.add_middleware(HostAllowlist, allowed=allowed_hosts)
    app.state.services = svc
    app.state.keys = svc.key_ring.view  # read by every route's key check (api.access)
    routers = (*ROUTERS, *extra_routers)
    _refuse_unguarded(routers)
    for router in routers:
        app.include_router(router)
    add_error_handlers(app)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(WEB / "index.html")

    @app.get("/portal/{link_id}", include_in_schema=False)
    def portal_page(link_id: str) -> FileResponse:
        # The page a portal link opens, framed only by its account's embed origins.
        ancestors = frame_ancestors(svc, link_id)
        csp = f"default-src 'self'; frame-ancestors {ancestors}"
        return FileResponse(WEB / "index.html", headers={"content-security-policy": csp})

    app.mount("/static", StaticFiles(directory=WEB), name="static")

    return app


def access_table(routers: Sequence[APIRouter]) -> list[tuple[str, str, Permission | None]]:
    """(method, path, permission) of every `/api/` route of these routers."""
    return [
        (method, route.path, permission_of(route))
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute) and route.path.startswith("/api/")
        for method in sorted((route.methods or set()) - {"HEAD"})
    ]


def _refuse_unguarded(routers: Sequence[APIRouter]) -> None:
    """Fail at start-up if an `/api/` route declares no permission (it would be open)."""
    for method, path, permission in access_table(routers):
        if permission is None:
            raise RuntimeError(f"{method} {path} declares no permission (api.access.allow)")
