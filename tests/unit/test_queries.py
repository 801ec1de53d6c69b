from datetime import UTC, datetime, timedelta, timezone

import pytest

from analytics import queries
from analytics.errors import BadQuery

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_period_defaults_to_the_last_seven_days() -> None:
    p = queries.Period.parse(None, None, NOW)
    assert (p.start, p.end) == (NOW - timedelta(days=7), NOW)


def test_period_converts_offsets_to_utc_and_treats_naive_as_utc() -> None:
    sao_paulo = timezone(timedelta(hours=-3))
    p = queries.Period.parse(
        datetime(2026, 11, 27, 0, 0, tzinfo=sao_paulo), datetime(2026, 11, 28, 0, 0), NOW
    )
    assert p.start == datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    assert p.end == datetime(2026, 11, 28, 0, 0, tzinfo=UTC)


def test_period_rejects_reversed_empty_and_too_old_ranges() -> None:
    with pytest.raises(BadQuery, match="must be before"):
        queries.Period.parse(NOW, NOW - timedelta(hours=1), NOW)
    with pytest.raises(BadQuery, match="must be before"):
        queries.Period.parse(NOW, NOW, NOW)
    with pytest.raises(BadQuery, match="30 days of history"):
        queries.Period.parse(NOW - timedelta(days=40), None, NOW)


def test_dispatches_query_filters_with_parameters_not_string_splicing() -> None:
    period = queries.Period(NOW - timedelta(days=1), NOW)
    sql, params = queries.dispatches("db", period, "failure", "O'Brien-1", limit=20)
    assert "status = {status:String}" in sql
    assert "order_id = {order_id:String}" in sql
    assert "O'Brien" not in sql
    assert params["order_id"] == "O'Brien-1"
    assert params["status"] == "failure"
    assert params["start"] == "2026-11-27 12:00:00.000"
    assert sql.endswith("LIMIT 21")
    assert "ORDER BY dispatched_at DESC, attempt_id DESC" in sql


def test_status_all_and_no_order_add_no_filters() -> None:
    sql, params = queries.dispatches("db", queries.Period(NOW - timedelta(days=1), NOW))
    assert "status =" not in sql
    assert "order_id =" not in sql
    assert set(params) == {"start", "end"}


def test_cursor_round_trips_and_becomes_a_keyset_condition() -> None:
    cursor = queries.Cursor(NOW, "5b0b7c4e-5d52-4c1e-9a53-6f0d1d6a0c11")
    decoded = queries.Cursor.decode(cursor.encode())
    assert decoded == cursor
    sql, params = queries.dispatches(
        "db", queries.Period(NOW - timedelta(days=1), NOW), cursor=decoded
    )
    assert "(dispatched_at, attempt_id) < ({c_at:" in sql
    assert params["c_id"] == cursor.attempt_id


@pytest.mark.parametrize("bad", ["", "garbage", "WyJ4Il0", "bm90IGpzb24"])
def test_foreign_cursors_are_rejected_with_advice(bad: str) -> None:
    with pytest.raises(BadQuery, match="start again without it"):
        queries.Cursor.decode(bad)


def test_limit_is_bounded() -> None:
    period = queries.Period(NOW - timedelta(days=1), NOW)
    with pytest.raises(BadQuery):
        queries.dispatches("db", period, limit=0)
    with pytest.raises(BadQuery):
        queries.dispatches("db", period, limit=queries.MAX_LIMIT + 1)


def test_summary_and_failure_rate() -> None:
    sql, params = queries.summary("db", queries.Period(NOW - timedelta(days=1), NOW), "A-1")
    assert "countIf(status = 'failure')" in sql
    assert params["order_id"] == "A-1"
    assert queries.failure_rate(0, 0) == 0.0
    assert queries.failure_rate(3, 1) == 0.3333
