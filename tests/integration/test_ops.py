"""Thread stacks on demand from every service, without a signal; chdb keeps answering."""

from __future__ import annotations

import httpx
import pytest

from disparo.ops_http import STACKS_PATH
from tests.integration.conftest import Stack, bearer, eventually, order_events, signed_in_key
from tests.integration.receiver import Receiver

pytestmark = pytest.mark.integration


def test_stacks_of_each_service_name_their_threads_and_chdb_keeps_answering(
    stack: Stack, receiver: Receiver
) -> None:
    analytics = stack.http.get(f"{stack.api}{STACKS_PATH}", timeout=10)
    assert analytics.status_code == 200
    assert "--- thread sink" in analytics.text
    assert "sink.py" in analytics.text  # where the sink's loop is
    rules_view = f"--- thread view-{stack.topics.rules}"
    assert rules_view in analytics.text
    assert f"--- thread view-{stack.topics.api_keys}" in analytics.text
    worker = httpx.get(f"{stack.worker}{STACKS_PATH}", headers=bearer(stack.key)).text
    assert "--- thread worker-consumer" in worker
    assert rules_view in worker  # workers look each job's rule up in their own view
    dispatcher = httpx.get(f"{stack.dispatcher}{STACKS_PATH}", headers=bearer(stack.key)).text
    assert rules_view in dispatcher

    # Stacks show every account's work: a platform admin's key only, on every service.
    viewer = signed_in_key(stack, "stack-viewer", "viewer")
    account_admin = signed_in_key(stack, "acme-admin", "admin", "acme")
    assert httpx.get(f"{stack.api}{STACKS_PATH}").status_code == 401
    assert httpx.get(f"{stack.api}{STACKS_PATH}", headers=bearer(viewer)).status_code == 403
    assert httpx.get(f"{stack.api}{STACKS_PATH}", headers=bearer(account_admin)).status_code == 403
    for ops in (stack.worker, stack.dispatcher):
        for key in (None, viewer, account_admin):
            refused = httpx.get(f"{ops}{STACKS_PATH}", headers=bearer(key) if key else {})
            assert refused.status_code == 401
            assert "platform admin key" in refused.json()["error"]

    # The embedded ClickHouse still answers queries and stores rows afterwards.
    summary = stack.http.get(f"{stack.api}/api/v1/dispatches/summary", timeout=10)
    assert summary.status_code == 200
    stack.active_rule(name="r", event_types=["*"], url=f"{receiver.url}/ok")
    stack.publisher.publish_many(order_events("STACKS", 3))
    rows = stack.rows_eventually(1, order_id="STACKS-1")
    assert [r["status"] for r in rows] == ["success"]
    assert stack.http.get(f"{stack.api}/healthz", timeout=10).json() == {"status": "ok"}


def test_the_dispatcher_reports_its_groups_lag(stack: Stack) -> None:
    group = stack.env["DISPARO_DISPATCHER_GROUP"]
    stack.publisher.publish_many(order_events("LAG", 2))  # no rule: routed to nobody

    def lag_series() -> str | None:
        text = httpx.get(f"{stack.dispatcher}/metrics", timeout=10).text
        lines = [line for line in text.splitlines() if f'group="{group}"' in line]
        return "\n".join(lines) if lines else None

    series = eventually(lag_series, 30, "the dispatcher's lag gauge")
    assert f'topic="{stack.topics.order_events}"' in series
    assert f'topic="{stack.topics.rules}"' in series
