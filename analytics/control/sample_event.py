"""The sample event a test webhook carries when the caller gives none."""

from __future__ import annotations

import uuid

from disparo.matching import ALL_EVENT_TYPES
from disparo.schemas import TEST_EVENT_TYPE, OrderEvent, Rule, now_utc


def sample_event(rule: Rule) -> OrderEvent:
    """An event of the rule's first event type, marked as a test in its payload."""
    kind = rule.event_types[0]
    return OrderEvent(
        event_id=uuid.uuid4(),
        event_type=TEST_EVENT_TYPE if kind == ALL_EVENT_TYPES else kind,
        order_id=f"test-{uuid.uuid4().hex[:8]}",
        order_status="test",
        occurred_at=now_utc(),
        payload={"test": True, "note": f"a test webhook of disparo rule {rule.id}"},
        account_id=rule.account_id,
    )
