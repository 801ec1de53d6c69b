"""The audit trail: who changed what, stored before the change is acknowledged."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Literal

from analytics.errors import StoreError
from analytics.history import schema
from analytics.history.queries import TS_TYPE, Cursor, Period, keyset_after, ts_param
from analytics.history.store import Store
from analytics.history.views import iso_text
from disparo.access import ApiKey
from disparo.schemas import now_utc

log = logging.getLogger(__name__)
Action = Literal[
    "rule.create",
    "rule.update",
    "rule.delete",
    "rule.rotate_secret",
    "rule.release_held",
    "rule.discard_held",
    "rule.backfill",
    "rule.test",
    "resend",
    "resend.bulk",
    "resend.latest",
    "key.create",
    "key.revoke",
    "account.create",
    "account.update",
    "account.rotate_secret",
    "order.expunge",
    "portal_link.create",
]
ACTIONS: tuple[str, ...] = Action.__args__  # type: ignore[attr-defined]
MAX_LIMIT = 500
SYSTEM_ACTOR = "disparo"  # changes disparo makes by itself (a rule deactivated by the warden)
COLUMNS = "at, audit_id, actor, key_id, account_id, action, target, details"


def record(
    store: Store,
    actor: ApiKey | str,
    action: Action,
    target: str,
    details: dict[str, Any],
    account_id: str | None = None,
) -> None:
    """Store one audit entry; raises StoreError (the caller answers 503) if it cannot.

    `actor` is the key that asked, or a name for what disparo did by itself; `account_id`
    the account of the object changed (default: the key's), which account keys filter on.
    """
    audit_id = str(uuid.uuid4())
    key = actor if isinstance(actor, ApiKey) else None
    row = {
        "at": now_utc(),
        "audit_id": audit_id,
        "actor": key.name if key else str(actor),
        "key_id": key.id if key else "",
        "account_id": account_id or (key.account_id if key else None) or "",
        "action": action,
        "target": target,
        "details": json.dumps(details, sort_keys=True, default=str),
    }
    try:
        store.insert(schema.AUDIT_TABLE, [row], dedup_token=audit_id)
    except StoreError:
        # Never silent: the entry goes to the log whole (details are masked already).
        log.error("audit entry not stored: %s", json.dumps(row, default=str))
        raise


def page_query(
    database: str,
    period: Period,
    actor: str | None,
    action: str | None,
    limit: int,
    cursor: Cursor | None,
    account_id: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """One page of audit entries, newest first; one extra row says whether more follow."""
    clauses = [f"at >= {{lo:{TS_TYPE}}}", f"at < {{hi:{TS_TYPE}}}"]
    params: dict[str, Any] = {"lo": ts_param(period.start), "hi": ts_param(period.end)}
    if account_id is not None:
        clauses.append("account_id = {account:String}")
        params["account"] = account_id
    if actor is not None:
        clauses.append("actor = {actor:String}")
        params["actor"] = actor
    if action is not None:
        clauses.append("action = {action:String}")
        params["action"] = action
    keyset_after(cursor, "at", "audit_id", clauses, params)
    sql = (
        f"SELECT {COLUMNS} FROM {database}.{schema.AUDIT_TABLE} WHERE {' AND '.join(clauses)} "
        f"ORDER BY at DESC, audit_id DESC LIMIT {limit + 1}"
    )
    return sql, params


def item(row: dict[str, Any]) -> dict[str, Any]:
    """An audit row as the API shows it (the contract's fields, plus `key_id`)."""
    return {
        "at": iso_text(row["at"]),
        "actor": row["actor"],
        "key_id": row["key_id"],
        "account_id": row["account_id"] or None,
        "action": row["action"],
        "target": row["target"],
        "details": json.loads(row["details"] or "{}"),
        "audit_id": str(row["audit_id"]),
    }
