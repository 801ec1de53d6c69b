"""The audit trail: `GET /api/v1/audit`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Query

from analytics.api.deps import READER, AccountQ, CursorQ, Reader, Svc
from analytics.api.routing import api_router
from analytics.control import audit
from analytics.control.scope import account_scope
from analytics.errors import InvalidField
from analytics.history import queries, schema
from disparo.schemas import now_utc

router = api_router(tags=["audit"], dependencies=[Depends(READER)])


@router.get("/api/v1/audit")
def list_audit(
    key: Reader,
    svc: Svc,
    start: Annotated[
        datetime | None, Query(alias="from", description="default 30 days ago")
    ] = None,
    end: Annotated[datetime | None, Query(alias="to", description="RFC 3339; default now")] = None,
    actor: Annotated[str | None, Query(max_length=100, description="a key's name")] = None,
    action: Annotated[str | None, Query(max_length=50, description="e.g. rule.update")] = None,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_LIMIT)] = 50,
    cursor: CursorQ = None,
    account_id: AccountQ = None,
) -> dict[str, Any]:
    """Rule, secret, resend and key changes, newest first (kept a year)."""
    if action is not None and action not in audit.ACTIONS:
        raise InvalidField("action", f"one of {', '.join(audit.ACTIONS)}")
    period = queries.Period.parse(
        start, end, now_utc(), default_days=30, kept_days=schema.AUDIT_RETENTION_DAYS
    )
    after = queries.Cursor.decode(cursor) if cursor else None
    scope = account_scope(key, account_id)
    sql, params = audit.page_query(
        svc.store.database, period, actor, action, limit, after, account_id=scope
    )
    rows = [audit.item(r) for r in svc.store.select(sql, params)]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        at = datetime.fromisoformat(last["at"].replace("Z", "+00:00"))
        next_cursor = queries.Cursor(at, last["audit_id"]).encode()
    return {"items": rows, "next_cursor": next_cursor}
