"""What one order-events record becomes: dispatch jobs, or a dead letter with a reason."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from disparo.errors import InvalidMessage
from disparo.matching import matching_rules
from disparo.schemas import DispatchJob, Rule, parse_event
from disparo.topics import MAX_EVENT_BYTES


@dataclass(frozen=True)
class Routed:
    """Jobs to send, or why the record is dead-lettered (`refused` is the metric label)."""

    jobs: list[DispatchJob] = field(default_factory=list)
    refused: str = ""
    reason: str = ""


def route(raw: bytes | None, rules: Sequence[Rule]) -> Routed:
    """One job per active rule the event matches; a record too large or invalid is refused."""
    size = len(raw or b"")
    if size > MAX_EVENT_BYTES:
        reason = (
            f"order event: {size / 1e6:.1f} MB is over the {MAX_EVENT_BYTES / 1e6:.1f} MB limit; "
            "put large documents elsewhere and link them from the payload"
        )
        return Routed(refused="too_large", reason=reason)
    try:
        event = parse_event(raw)
    except InvalidMessage as exc:
        return Routed(refused="invalid_event", reason=exc.reason)
    return Routed(jobs=[DispatchJob.first(event, rule) for rule in matching_rules(rules, event)])
