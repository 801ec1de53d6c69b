"""One delivery attempt as the worker keeps it: plain data, written as a row of its batch.

The worker never sends an attempt as an `AttemptOutcome` message any more (its outcomes go
as batch rows), so it builds none: a slotted dataclass with the same fields costs a fraction
of a pydantic model's construction, on every delivery.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime

from disparo.schemas import OrderEvent, Status


@dataclass(slots=True)
class Attempt:
    """The record of one attempt (or of a job that ended without one), as a batch row holds it."""

    attempt_id: str
    dispatch_id: str
    attempt: int
    manual: bool
    order_id: str
    order_status: str | None
    event_id: str
    event_type: str
    rule_id: int
    url: str
    account_id: str
    dispatched_at: datetime
    status: Status
    reason: str
    duration_ms: int
    final: bool
    http_status: int | None = None
    error: str | None = None
    request_excerpt: str = ""
    response_excerpt: str = ""
    request_headers: dict[str, str] = field(default_factory=dict)
    retry_after_s: float | None = None
    retry_tier: str | None = None
    retry_at: datetime | None = None
    event: OrderEvent | None = None
    event_json: str | None = None  # the event as the body carried it, encoded once

    def replace(self, **changes: object) -> Attempt:
        """A copy with `changes`."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def event_text(self) -> str:
        """The event as JSON ("" without one)."""
        if self.event_json is None:
            self.event_json = self.event.model_dump_json() if self.event else ""
        return self.event_json
