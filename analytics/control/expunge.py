"""Erasing an order's personal data (LGPD): `POST /api/v1/orders/{order_id}/expunge`.

ClickHouse mutations (`ALTER TABLE ... UPDATE/DELETE`, waited for) and not lightweight
deletes: a lightweight delete removes whole rows, while the history must keep each
attempt's ids, status, time and HTTP code so its counts still add up, and it is refused on
a table with projections (the attempts table has three). A mutation rewrites only the
blanked columns, and only in the parts that hold the order's rows.
"""

from __future__ import annotations

from typing import Any

from analytics.control import audit
from analytics.control.scope import account_scope
from analytics.control.services import Services
from analytics.errors import NotFound
from analytics.history import schema
from analytics.history.event_queries import sql_text
from disparo.access import ApiKey

EXPUNGED = schema.EXPUNGED


def expunge_order(
    svc: Services, order_id: str, actor: ApiKey, account_id: str | None = None
) -> dict[str, Any]:
    """Blank the order's payloads, request bodies and answers in the attempts and events
    tables (the key's account only, or `account_id`'s, or every account's for a platform
    key), drop its search values; audited."""
    scope = account_scope(actor, account_id)
    where = f"order_id = {sql_text(order_id)}"
    if scope is not None:
        where += f" AND account_id = {sql_text(scope)}"
    db = svc.store.database
    [found] = svc.store.select(
        f"SELECT (SELECT count() FROM {db}.{schema.TABLE} WHERE {where}) AS attempts, "
        f"(SELECT uniqExact(event_id) FROM {db}.{schema.EVENTS_TABLE} WHERE {where}) AS events"
    )
    attempts, events = int(found["attempts"]), int(found["events"])
    if not attempts and not events:
        raise NotFound(f"no attempts or events of order {order_id!r} are stored")
    for statement in schema.expunge_sql(db, where):
        svc.store.command(statement)
    details = {"attempts": attempts, "events": events}
    audit.record(svc.store, actor, "order.expunge", order_id, details, scope)
    return {"order_id": order_id, "expunged_attempts": attempts, "expunged_events": events}


def readable(stored: str) -> bool:
    """Whether a stored event's JSON is still there (not expunged) to be resent."""
    return stored != EXPUNGED
