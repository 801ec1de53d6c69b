"""The management API application: routers, error translation, the page."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from analytics.api import (
    accounts,
    audit,
    coverage,
    dispatches,
    health,
    held,
    keys,
    resend,
    rule_tools,
    rules,
)
from analytics.api.deps import Services
from analytics.api.guards import BodyLimit, HostAllowlist, SecurityHeaders
from analytics.errors import (
    AnalyticsError,
    BadQuery,
    Conflict,
    InvalidField,
    KafkaRefused,
    NoAnswer,
    NotFound,
    RateLimited,
    StoreError,
    TooBroad,
)
from disparo.access import Permission
from disparo.api_access import permission_of

WEB = Path(__file__).resolve().parent.parent / "web"
ROUTERS = (
    health.router,
    rule_tools.router,  # before rules: /rules/dry-run is not a rule id
    rules.router,
    held.router,
    dispatches.router,
    resend.router,
    coverage.router,
    keys.router,
    audit.router,
    accounts.router,
)
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
# Domain errors to HTTP, in one place: routers and the code below them raise domain errors.
STATUS_OF: tuple[tuple[type[AnalyticsError], int], ...] = (
    (BadQuery, 400),
    (NotFound, 404),
    (Conflict, 409),
    (InvalidField, 422),
    (TooBroad, 422),
    (RateLimited, 429),
    (KafkaRefused, 503),
    (StoreError, 503),
    (NoAnswer, 504),
)


def http_status_of(exc: AnalyticsError) -> int:
    """The HTTP status an analytics error answers with (500 for one not in the table)."""
    return next((status for kind, status in STATUS_OF if isinstance(exc, kind)), 500)


def create_app(
    svc: Services,
    extra_routers: Sequence[APIRouter] = (),
    extra_state: Mapping[str, Any] | None = None,
    lifespan: Lifespan | None = None,
    allowed_hosts: Sequence[str] = ("127.0.0.1", "localhost"),
) -> FastAPI:
    """The FastAPI app over the given services, plus routers another stage serves here."""
    app = FastAPI(title="disparo management API", version="1", lifespan=lifespan)
    # Added innermost first: the Host check runs before anything else (DNS rebinding).
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(HostAllowlist, allowed=allowed_hosts)
    app.state.services = svc
    app.state.keys = svc.keys  # read by every route's key check (disparo.api_access)
    app.state.accounts = svc.accounts  # and by the ingest's per-account limit
    app.state.limiter = svc.limiter
    for name, value in (extra_state or {}).items():
        setattr(app.state, name, value)
    routers = (*ROUTERS, *extra_routers)
    _refuse_unguarded(routers)
    for router in routers:
        app.include_router(router)
    _add_error_handlers(app)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(WEB / "index.html")

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
            raise RuntimeError(f"{method} {path} declares no permission (disparo.api_access.allow)")


def _by_field(exc: RequestValidationError) -> dict[str, str]:
    """First message per field path (`url`, `headers.X`; `body` for the whole request)."""
    fields: dict[str, str] = {}
    for err in exc.errors()[:20]:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        message = str(err.get("msg", "")).removeprefix("Value error, ")
        fields.setdefault(".".join(loc) or "body", message)
    return fields


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = _by_field(exc)
        error = "; ".join(f"{name}: {message}" for name, message in fields.items())
        return JSONResponse({"error": error, "fields": fields}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(AnalyticsError)
    async def domain_error(_: Request, exc: AnalyticsError) -> JSONResponse:
        text = f"history store unavailable: {exc}" if isinstance(exc, StoreError) else str(exc)
        body: dict[str, Any] = {"error": text}
        if isinstance(exc, InvalidField):  # the same shape as a schema validation error
            body["fields"] = {exc.field: exc.message}
        headers = {}
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(exc.retry_after_s)
        return JSONResponse(body, status_code=http_status_of(exc), headers=headers)
