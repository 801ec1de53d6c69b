"""Manual resends: `POST /api/v1/resend` (one dispatch or an order) and `/resend/bulk`."""

from __future__ import annotations

from typing import Any

from analytics.api.deps import INLINE_WAIT_S, IdempotencyKey, Operator, Svc
from analytics.api.routing import api_router
from analytics.control import resends
from analytics.control.resends import BulkResendRequest, ResendRequest
from analytics.control.tasks import answer

router = api_router(tags=["resend"])


@router.post("/api/v1/resend", status_code=202)
def resend(
    body: ResendRequest, actor: Operator, svc: Svc, key: IdempotencyKey = None
) -> dict[str, Any]:
    """Queue a new attempt of one dispatch, or of every dispatch of an order."""
    request = ("resend", body.model_dump())
    scope = actor.account_id or ""
    return svc.idempotency.once(scope, key, request, lambda: resends.resend(svc, body, actor))


@router.post("/api/v1/resend/bulk", status_code=202)
def resend_bulk(
    body: BulkResendRequest, actor: Operator, svc: Svc, key: IdempotencyKey = None
) -> dict[str, Any]:
    """Queue a new attempt of every final-failed dispatch matching the filter; recorded."""
    request = ("resend.bulk", body.model_dump())
    return svc.idempotency.once(
        actor.account_id or "",
        key,
        request,
        lambda: answer(resends.resend_bulk(svc, body, actor), INLINE_WAIT_S),
    )
