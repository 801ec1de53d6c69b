"""Domain errors to HTTP, in one place: routers and the code below them raise domain errors."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from analytics.errors import (
    AnalyticsError,
    BadQuery,
    Conflict,
    Forbidden,
    InvalidField,
    KafkaRefused,
    NoAnswer,
    NotFound,
    QueryTimeout,
    RateLimited,
    StaleVersion,
    StoreError,
    TooBroad,
    TooLarge,
)

log = logging.getLogger(__name__)
STATUS_OF: tuple[tuple[type[AnalyticsError], int], ...] = (
    (BadQuery, 400),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (TooLarge, 413),
    (InvalidField, 422),
    (TooBroad, 422),
    (RateLimited, 429),
    (KafkaRefused, 503),
    (QueryTimeout, 504),  # before StoreError, of which it is a kind
    (StoreError, 503),
    (NoAnswer, 504),
)


def http_status_of(exc: AnalyticsError) -> int:
    """The HTTP status an analytics error answers with (500 for one not in the table)."""
    return next((status for kind, status in STATUS_OF if isinstance(exc, kind)), 500)


def _by_field(exc: RequestValidationError) -> dict[str, str]:
    """First message per field path (`url`, `headers.X`; `body` for the whole request)."""
    fields: dict[str, str] = {}
    for err in exc.errors()[:20]:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        message = str(err.get("msg", "")).removeprefix("Value error, ")
        fields.setdefault(".".join(loc) or "body", message)
    return fields


def add_error_handlers(app: FastAPI) -> None:
    """Validation errors, HTTP errors and domain errors, each as `{"error": ...}`."""

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
        text = str(exc)
        if isinstance(exc, StoreError) and not isinstance(exc, QueryTimeout):
            log.error("history store error answered 503: %s", exc)  # its text stays here
            text = "history store unavailable; try again shortly (the analytics log has why)"
        body: dict[str, Any] = {"error": text}
        if isinstance(exc, InvalidField):  # the same shape as a schema validation error
            body["fields"] = {exc.field: exc.message}
        if isinstance(exc, StaleVersion):
            body["current_version"] = exc.current_version
        headers = {}
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(exc.retry_after_s)
        return JSONResponse(body, status_code=http_status_of(exc), headers=headers)
