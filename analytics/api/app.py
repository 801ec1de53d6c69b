"""The management API application: routers, error translation, the page."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from analytics.api import dispatches, health, resend, rules
from analytics.api.deps import Services
from analytics.errors import StoreError
from producers import http as ingest
from producers.publish import Publisher

WEB = Path(__file__).resolve().parent.parent / "web"
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_app(svc: Services, publisher: Publisher, lifespan: Lifespan | None = None) -> FastAPI:
    """The FastAPI app over the given services."""
    app = FastAPI(title="disparo management API", version="1", lifespan=lifespan)
    app.state.services = svc
    app.state.publisher = publisher
    for router in (health.router, rules.router, dispatches.router, resend.router, ingest.router):
        app.include_router(router)
    _add_error_handlers(app)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(WEB / "index.html")

    app.mount("/static", StaticFiles(directory=WEB), name="static")

    return app


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
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(StoreError)
    async def store_down(_: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse({"error": f"history store unavailable: {exc}"}, status_code=503)
