"""The live history's pieces without Kafka: rows of a record, a stream's bound, its filter."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from analytics.api.live import accepts
from analytics.control.live_feed import MAX_QUEUED, Stream, _rows_of
from analytics.history.queries import Period
from analytics.history.schema import ITEM_FIELDS
from analytics.history.views import HistoryFilter
from disparo.outcome_batch import batch_headers, row_line
from tests.factories import outcome

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_a_batch_gives_its_good_rows_as_list_items_and_skips_a_bad_one() -> None:
    good = [outcome("A-1", NOW), outcome("A-2", NOW, "failure")]
    value = row_line(good[0]) + b'{"attempt_id": "not a row"}\n' + row_line(good[1])
    rows = _rows_of(SimpleNamespace(value=value, headers=batch_headers("w-1", False)))
    assert [r["order_id"] for r in rows] == ["A-1", "A-2"]
    assert [r["status"] for r in rows] == ["success", "failure"]
    assert set(rows[0]) == set(ITEM_FIELDS)
    assert rows[0]["dispatched_at"] == "2026-12-07T12:00:00.000Z"
    assert rows[1]["http_status"] == 503
    assert rows[0]["error"] is None


def test_an_old_single_attempt_record_is_one_row_and_garbage_none() -> None:
    single = outcome("S-1", NOW).model_dump_json().encode()
    assert [r["order_id"] for r in _rows_of(SimpleNamespace(value=single, headers=[]))] == ["S-1"]
    assert _rows_of(SimpleNamespace(value=b"{nope", headers=[])) == []


def test_a_client_that_leaves_too_many_rows_unread_is_dropped() -> None:
    async def run() -> tuple[int, bool, bool]:
        stream = Stream("key_1", lambda row: True, asyncio.get_running_loop())
        stream.offer([{"n": i} for i in range(MAX_QUEUED)])
        read = len(await stream.next_rows(1.0))
        stream.offer([{"n": 0}] * MAX_QUEUED)
        full = stream.dropped
        stream.offer([{"n": 0}])  # one more: over the bound
        return read, full, stream.dropped

    assert asyncio.run(run()) == (MAX_QUEUED, False, True)


def test_a_quiet_stream_answers_empty_after_its_wait() -> None:
    async def run() -> list[dict[str, int]]:
        stream = Stream("key_1", lambda row: True, asyncio.get_running_loop())
        return await stream.next_rows(0.01)

    assert asyncio.run(run()) == []


def test_the_stream_filter_is_the_lists() -> None:
    period = Period(NOW - timedelta(days=7), NOW + timedelta(hours=1))
    take = accepts(HistoryFilter(period, "failure", "A-1", None, None, "acct"))
    row = {
        "status": "failure",
        "order_id": "A-1",
        "account_id": "acct",
        "reason": "http_5xx",
        "rule_id": 7,
        "dispatched_at": "2026-12-07T12:00:00.000Z",
    }
    assert take(row)
    assert not take({**row, "status": "success"})
    assert not take({**row, "account_id": "other"})
    assert not take({**row, "order_id": "A-2"})
    assert not take({**row, "dispatched_at": "2026-11-01T12:00:00.000Z"})
    everything = accepts(HistoryFilter(period, "all", None, None, None, None))
    assert everything({**row, "status": "held", "account_id": "other"})
