"""What routers declare, defined once: the services, the keys by permission, common queries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Header, Query, Request

from analytics.api.access import allow
from analytics.control.services import Services
from disparo.access import ApiKey, Permission


async def services(request: Request) -> Services:
    """The app's services; async so that it is read on the event loop, not the thread pool."""
    found: Services = request.app.state.services
    return found


# How long a request that starts a bulk task waits to answer with its result; past it, the
# answer is the task's id and progress (GET /api/v1/tasks/{id}).
INLINE_WAIT_S = 5.0

# One callable per permission: FastAPI runs a dependency once per request.
INGESTER = allow(Permission.INGEST)
READER = allow(Permission.READ)
OPERATOR = allow(Permission.RESEND)
ADMIN = allow(Permission.MANAGE)
SIGNED_IN = allow(Permission.SIGNED_IN)

Svc = Annotated[Services, Depends(services)]
Ingester = Annotated[ApiKey, Depends(INGESTER)]
Reader = Annotated[ApiKey, Depends(READER)]
Operator = Annotated[ApiKey, Depends(OPERATOR)]
Admin = Annotated[ApiKey, Depends(ADMIN)]
SignedIn = Annotated[ApiKey, Depends(SIGNED_IN)]

FromQ = Annotated[datetime | None, Query(alias="from", description="RFC 3339; default 7 days ago")]
ToQ = Annotated[datetime | None, Query(alias="to", description="RFC 3339; default now")]
OrderQ = Annotated[str | None, Query(max_length=200, description="exact order number")]
KeyQ = Annotated[
    str | None,
    Query(
        alias="key",
        min_length=1,
        max_length=200,
        description="an order number or the value of one of the account's search_keys "
        "(e.g. a tracking code)",
    ),
]
ReasonQ = Annotated[
    str | None,
    Query(
        max_length=256,
        description="the reason, e.g. timeout or http_5xx (a regressed one: after <status>)",
    ),
]
RuleQ = Annotated[
    int | None, Query(ge=0, le=2**63 - 1, description="event rule id (0: account notifications)")
]
AccountQ = Annotated[
    str | None,
    Query(
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
        description="one account's objects (platform keys; an account key sees only its own)",
    ),
]
CursorQ = Annotated[str | None, Query(max_length=500)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="the same key within 24 h answers the first result and queues nothing",
    ),
]
VersionQ = Annotated[
    int | None,
    Query(ge=1, lt=2**53, description="the rule version this is based on; another answers 409"),
]
