"""Outcome batches: a worker's attempts as insert-ready rows, one `outcomes` record per batch.

A batch record's value is JSON lines, one attempts-table row per line (every column but
the two Kafka ones, which the sink adds), so the sink hands the bytes to ClickHouse as they
are. Its headers say it is a batch, its own id, which worker wrote it (`owner`), and whether
any of its attempts may repeat one an earlier owner of the same jobs already reported
(`replay`). The record key names the job partition the attempts came from (`jobs-3`):
every batch of one job partition, whoever wrote it, lands in one `outcomes` partition, in
the order written.
Single-attempt records (AttemptOutcome JSON, no batch header) stay valid beside batches.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import AwareDatetime, ConfigDict, TypeAdapter, ValidationError, with_config
from pydantic_core import from_json, to_json
from typing_extensions import TypedDict

from disparo.errors import InvalidMessage
from disparo.schemas import AttemptOutcome, UuidText, describe

BATCH_HEADER = "disparo.batch"
BATCH_FORMAT = b"attempts/1"  # the row layout below; a new layout gets a new value
OWNER_HEADER = "disparo.owner"
BATCH_ID_HEADER = "disparo.batch_id"
REPLAY_HEADER = "disparo.replay"
# One batch record stays far below the topic's record limit (10 MiB) and the fetch sizes.
MAX_BATCH_BYTES = 1024 * 1024
Headers = list[tuple[str, bytes]]


@with_config(ConfigDict(extra="forbid", hide_input_in_errors=True))
class AttemptRow(TypedDict):
    """One attempts-table row as a batch carries it (the Kafka columns come from the sink)."""

    dispatched_at: AwareDatetime
    attempt_id: UuidText
    dispatch_id: str
    attempt: int
    manual: bool
    final: bool
    order_id: str
    order_status: str
    event_id: UuidText
    event_type: str
    rule_id: int
    url: str
    status: Literal["success", "failure", "held", "superseded", "regressed"]
    reason: str
    http_status: int
    error: str
    duration_ms: int
    request_excerpt: str
    response_excerpt: str
    retry_tier: str
    event_json: str
    request_headers: str
    account_id: str


ROW_FIELDS: tuple[str, ...] = tuple(AttemptRow.__annotations__)
_ROW = TypeAdapter(AttemptRow)


class Reported(Protocol):
    """What a row is made of: an AttemptOutcome, or the worker's own plain attempt record."""

    @property
    def attempt_id(self) -> str: ...

    @property
    def dispatch_id(self) -> str: ...

    @property
    def attempt(self) -> int: ...

    @property
    def manual(self) -> bool: ...

    @property
    def final(self) -> bool: ...

    @property
    def order_id(self) -> str: ...

    @property
    def order_status(self) -> str | None: ...

    @property
    def event_id(self) -> str: ...

    @property
    def event_type(self) -> str: ...

    @property
    def rule_id(self) -> int: ...

    @property
    def url(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def reason(self) -> str: ...

    @property
    def http_status(self) -> int | None: ...

    @property
    def error(self) -> str | None: ...

    @property
    def duration_ms(self) -> int: ...

    @property
    def request_excerpt(self) -> str: ...

    @property
    def response_excerpt(self) -> str: ...

    @property
    def retry_tier(self) -> str | None: ...

    @property
    def request_headers(self) -> dict[str, str]: ...

    @property
    def account_id(self) -> str: ...

    @property
    def dispatched_at(self) -> datetime: ...

    def event_text(self) -> str: ...


def attempt_row(outcome: Reported) -> dict[str, Any]:
    """The attempts-table row of one outcome, without the Kafka columns."""
    return {
        "dispatched_at": outcome.dispatched_at,
        "attempt_id": outcome.attempt_id,
        "dispatch_id": outcome.dispatch_id,
        "attempt": outcome.attempt,
        "manual": outcome.manual,
        "final": outcome.final,
        "order_id": outcome.order_id,
        "order_status": outcome.order_status or "",
        "event_id": outcome.event_id,
        "event_type": outcome.event_type,
        "rule_id": outcome.rule_id,
        "url": outcome.url,
        "status": outcome.status,
        "reason": outcome.reason,
        "http_status": outcome.http_status or 0,
        "error": outcome.error or "",
        "duration_ms": outcome.duration_ms,
        "request_excerpt": outcome.request_excerpt,
        "response_excerpt": outcome.response_excerpt,
        "retry_tier": outcome.retry_tier or "",
        "event_json": outcome.event_text(),
        "request_headers": to_json(outcome.request_headers).decode()
        if outcome.request_headers
        else "",
        "account_id": outcome.account_id,
    }


def row_line(outcome: Reported) -> bytes:
    """One JSON line of a batch (ends with a newline: JSON never holds a raw one)."""
    return to_json(attempt_row(outcome)) + b"\n"


def batch_headers(owner: str, replay: bool) -> Headers:
    """The headers of a new batch record written by `owner`."""
    headers = [
        (BATCH_HEADER, BATCH_FORMAT),
        (BATCH_ID_HEADER, uuid.uuid4().hex.encode()),
        (OWNER_HEADER, owner.encode()),
    ]
    if replay:
        headers.append((REPLAY_HEADER, b"1"))
    return headers


def header(headers: Iterable[tuple[str, bytes]] | None, name: str) -> bytes | None:
    """A header's value, or None."""
    for key, value in headers or ():
        if key == name:
            return value
    return None


def is_batch(headers: Iterable[tuple[str, bytes]] | None) -> bool:
    """True for a batch record (any format); False for a single AttemptOutcome."""
    return header(headers, BATCH_HEADER) is not None


def lines_of(value: bytes | None, headers: Iterable[tuple[str, bytes]] | None) -> list[bytes]:
    """A batch's row lines, each ending with a newline; InvalidMessage if it is not one."""
    found = header(headers, BATCH_HEADER)
    if found != BATCH_FORMAT:
        raise InvalidMessage(f"outcome batch: unknown format {found!r}; expected {BATCH_FORMAT!r}")
    if not value or not value.endswith(b"}\n"):
        raise InvalidMessage("outcome batch: empty, or not JSON lines ending with a newline")
    return value.splitlines(keepends=True)


def checked_row(line: bytes) -> dict[str, Any]:
    """Validate one row line fully (done only when ClickHouse refused an insert)."""
    try:
        return dict(_ROW.validate_json(line))
    except ValidationError as exc:
        raise InvalidMessage(f"attempt row: {describe(exc)}") from None


def loose_row(line: bytes) -> dict[str, Any]:
    """A row line's fields as JSON gives them, unvalidated (for lookups by attempt id)."""
    row = from_json(line)
    if not isinstance(row, dict):
        raise InvalidMessage("attempt row: not a JSON object")
    return row


def outcome_of(line: bytes) -> AttemptOutcome:
    """The AttemptOutcome a row line records (for whoever awaits one attempt's answer)."""
    row = checked_row(line)
    event = row.pop("event_json")
    headers = row.pop("request_headers")
    nothing = {"order_status", "http_status", "error", "retry_tier"}
    fields = {k: (None if k in nothing and not v else v) for k, v in row.items()}
    return AttemptOutcome.model_validate(
        {
            **fields,
            "event": json.loads(event) if event else None,
            "request_headers": json.loads(headers) if headers else {},
        }
    )


def split(lines: Sequence[bytes], limit: int = MAX_BATCH_BYTES) -> list[bytes]:
    """Join lines into record values of at most `limit` bytes (a longer line goes alone)."""
    values: list[bytes] = []
    part: list[bytes] = []
    size = 0
    for line in lines:
        if part and size + len(line) > limit:
            values.append(b"".join(part))
            part, size = [], 0
        part.append(line)
        size += len(line)
    if part:
        values.append(b"".join(part))
    return values
