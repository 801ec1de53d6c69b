"""Idempotent POSTs: a request sent again with the same `Idempotency-Key` within a day gets
the first answer again and does nothing (a client retrying a resend after a timeout)."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from analytics.errors import Conflict, InvalidField
from analytics.history import schema
from analytics.history.queries import TS_TYPE, ts_param
from analytics.history.store import Store
from disparo.schemas import now_utc

WINDOW = timedelta(hours=24)
HEADER = "Idempotency-Key"
_KEY = re.compile(r"[\x21-\x7e]{1,200}")  # visible ASCII, as clients generate (UUIDs mostly)
Answer = dict[str, Any]


class Idempotency:
    """First answers by (account, key), kept a day in the history store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def once(self, scope: str, key: str | None, request: Any, run: Callable[[], Answer]) -> Answer:
        """`run()`'s answer; with a key seen before (same request), the first answer."""
        if key is None:
            return run()
        if not _KEY.fullmatch(key):
            raise InvalidField(HEADER, "must be 1 to 200 visible ASCII characters (a UUID)")
        digest = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode())
        sha = digest.hexdigest()
        with self._lock_of(scope, key):
            first = self._first(scope, key)
            if first is not None:
                if first["request_sha"] != sha:
                    raise Conflict(
                        f"{HEADER} {key!r} was used for a different request within 24 h; "
                        "use a new key for a new request"
                    )
                answer: Answer = json.loads(first["answer"])
                return {**answer, "replayed": True}
            answer = run()
            at = now_utc()
            row = {"at": at, "scope": scope, "idem_key": key, "request_sha": sha,
                   "answer": json.dumps(answer, default=str)}  # fmt: skip
            # The time is in the token: a key used again after the window is a new row.
            token = f"{scope}/{key}/{at.isoformat()}"
            self.store.insert(schema.IDEMPOTENCY_TABLE, [row], dedup_token=token)
            return answer

    def _first(self, scope: str, key: str) -> dict[str, Any] | None:
        sql = (
            f"SELECT request_sha, answer FROM {self.store.database}.{schema.IDEMPOTENCY_TABLE} "
            f"WHERE scope = {{scope:String}} AND idem_key = {{key:String}} "
            f"AND at >= {{since:{TS_TYPE}}} ORDER BY at LIMIT 1"
        )
        since = ts_param(now_utc() - WINDOW)
        rows = self.store.select(sql, {"scope": scope, "key": key, "since": since})
        return rows[0] if rows else None

    def _lock_of(self, scope: str, key: str) -> threading.Lock:
        with self._guard:
            if len(self._locks) > 10_000:  # locks of finished requests: none is held long
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            return self._locks.setdefault((scope, key), threading.Lock())
