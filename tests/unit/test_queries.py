from datetime import UTC, datetime, timedelta, timezone

import pytest

from analytics.errors import BadQuery
from analytics.history import queries

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


def test_a_to_before_the_kept_history_is_refused_even_at_the_first_date() -> None:
    for end in (datetime(1, 1, 1, tzinfo=UTC), NOW - timedelta(days=31)):
        with pytest.raises(BadQuery, match="'to' is older than the 30 days of history kept"):
            queries.Period.parse(None, end, NOW)
    far = queries.Period.parse(None, datetime(9999, 12, 31, tzinfo=UTC), NOW)
    assert far.end - far.start == timedelta(days=7)


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


def test_summary_of_an_order_reads_rows_only() -> None:
    sql, params = queries.summary("db", queries.Period(NOW - timedelta(days=1), NOW), "A-1")
    assert "toStartOfHour" not in sql  # an order search seeks by order, never by hour
    assert sql.count("SELECT status, count() AS n") == 1
    assert params == {
        "lo0": "2026-11-27 12:00:00.000",
        "hi0": "2026-11-28 12:00:00.000",
        "order_id": "A-1",
    }
    assert queries.failure_rate(0, 0) == 0.0
    assert queries.failure_rate(3, 1) == 0.3333


def slices(start: datetime, end: datetime) -> list[tuple[datetime, datetime, bool]]:
    return queries._slices(queries.Period(start, end), rows_only=False)


def at(day: int, hour: int, minute: int = 0, second: int = 0, ms: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, ms * 1000, tzinfo=UTC)


def test_whole_hours_come_from_the_projection_and_partial_edges_from_rows() -> None:
    assert slices(at(21, 9, 41, 7, 250), at(28, 9, 41, 7, 250)) == [
        (at(21, 10), at(28, 9), True),
        (at(21, 9, 41, 7, 250), at(21, 10), False),
        (at(28, 9), at(28, 9, 41, 7, 250), False),
    ]


def test_hour_aligned_periods_have_no_edges() -> None:
    assert slices(at(27, 0), at(28, 0)) == [(at(27, 0), at(28, 0), True)]


def test_a_period_within_one_hour_or_across_one_boundary_reads_rows() -> None:
    assert slices(at(28, 9, 5), at(28, 9, 55)) == [(at(28, 9, 5), at(28, 9, 55), False)]
    assert slices(at(28, 9, 30), at(28, 10, 30)) == [(at(28, 9, 30), at(28, 10, 30), False)]


def test_a_local_day_in_sao_paulo_is_a_whole_utc_hour_range() -> None:
    # The screen sends the viewer's midnight; -03:00 midnight is 03:00 UTC, still whole hours.
    sao_paulo = timezone(timedelta(hours=-3))
    period = queries.Period.parse(
        datetime(2026, 11, 27, tzinfo=sao_paulo), datetime(2026, 11, 28, tzinfo=sao_paulo), NOW
    )
    assert queries._slices(period, rows_only=False) == [(at(27, 3), at(28, 3), True)]


def test_a_half_hour_time_zone_day_gets_two_half_hour_edges() -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    period = queries.Period.parse(
        datetime(2026, 11, 27, tzinfo=india), datetime(2026, 11, 28, tzinfo=india), NOW
    )
    assert queries._slices(period, rows_only=False) == [
        (at(26, 19), at(27, 18), True),
        (at(26, 18, 30), at(26, 19), False),
        (at(27, 18), at(27, 18, 30), False),
    ]


def test_counts_sql_unions_slices_with_their_own_bounds_and_shared_filters() -> None:
    period = queries.Period(at(21, 9, 30), at(28, 9, 30))
    sql, params = queries.counts("db", period, ("reason", "rule_id"), {"status": "failure"})
    assert sql.count(" UNION ALL ") == 2
    assert "toStartOfHour(dispatched_at) >= {lo0:DateTime64(3, 'UTC')}" in sql
    assert "dispatched_at >= {lo1:DateTime64(3, 'UTC')}" in sql
    assert sql.count("status = {status:String}") == 3
    assert sql.startswith("SELECT reason AS reason_, rule_id AS rule_id_, sum(n) AS n FROM (")
    assert sql.endswith("GROUP BY reason, rule_id")
    assert params["lo0"] == "2026-11-21 10:00:00.000"
    assert params["hi0"] == "2026-11-28 09:00:00.000"
    assert params["status"] == "failure"


def test_breakdown_and_list_filters_by_reason_and_rule() -> None:
    period = queries.Period(at(27, 0), at(28, 0))
    sql, params = queries.dispatches("db", period, "failure", reason="timeout", rule_id=61856)
    assert "reason = {reason:String}" in sql
    assert "rule_id = {rule_id:UInt64}" in sql
    assert (params["reason"], params["rule_id"]) == ("timeout", 61856)
    sql, params = queries.failure_breakdown("db", period)
    assert params["status"] == "failure"
    assert "GROUP BY reason, rule_id" in sql


def test_stored_attempts_inlines_only_parsed_uuids_and_whole_seconds() -> None:
    ids = ["5B0B7C4E-5D52-4C1E-9A53-6F0D1D6A0C11"]
    sql, params = queries.stored_attempts("db", ids, at(28, 8, 0, 0, 250), at(28, 9, 0, 1, 999))
    assert params == {}
    assert "attempt_id IN (toUUID('5b0b7c4e-5d52-4c1e-9a53-6f0d1d6a0c11'))" in sql
    assert "dispatched_at >= '2026-11-28 08:00:00'" in sql
    assert "dispatched_at < '2026-11-28 09:00:02'" in sql
    with pytest.raises(ValueError, match="badly formed"):
        queries.stored_attempts("db", ["x') OR 1=1 --"], at(28, 8), at(28, 9))


def test_the_regression_breakdown_reads_the_payload_path_as_parameters() -> None:
    period = queries.Period(NOW - timedelta(days=1), NOW)
    sql, params = queries.regression_breakdown(
        "db", period, ("payload", "carrier'); DROP"), account_id="acct-1"
    )
    assert "JSONExtractRaw(event_json, {d0:String}, {d1:String}) AS value_" in sql
    assert "DROP" not in sql
    assert (params["d0"], params["d1"]) == ("payload", "carrier'); DROP")
    assert params["status"] == "regressed"
    assert params["account_id"] == "acct-1"
    assert "GROUP BY value_, rule_id_, reason_" in sql
