"""The attempt record is defined once: table, sink row, API item, CSV and page reasons agree."""

from __future__ import annotations

import re
from pathlib import Path

from analytics.api.dispatches import CSV_COLUMNS
from analytics.history import queries, schema
from analytics.history.sink import row_of
from disparo.reasons import ATTEMPT_REASONS
from disparo.schemas import AttemptOutcome, now_utc
from tests.factories import outcome

I18N = Path(__file__).resolve().parents[2] / "analytics" / "api" / "web" / "i18n.js"
# The list items design.md promises to outside clients.
CONTRACT_ITEM = {
    "dispatch_id", "attempt_id", "attempt", "order_id", "order_status", "event_type", "rule_id",
    "dispatched_at", "status", "http_status", "error", "url", "duration_ms", "manual",
}  # fmt: skip


def test_the_sink_row_has_exactly_the_table_columns() -> None:
    row = row_of(outcome("ORD-1", now_utc()), partition=2, offset=7)
    assert list(row) == [name for name, _ in schema.ATTEMPT_COLUMNS]


def test_every_outcome_field_is_stored_or_known_to_be_transient() -> None:
    stored = {name for name, _ in schema.ATTEMPT_COLUMNS}
    transient = {"retry_at", "retry_after_s", "event"}  # scheduling data; event -> event_json
    assert set(AttemptOutcome.model_fields) - stored == transient


def test_api_items_and_csv_come_from_the_shown_columns_and_keep_the_contract() -> None:
    assert queries.ITEM_COLUMNS.split(", ") == list(schema.ITEM_FIELDS)
    assert sorted(CSV_COLUMNS) == sorted(schema.ITEM_FIELDS)
    assert set(schema.ITEM_FIELDS) >= CONTRACT_ITEM
    assert CSV_COLUMNS[:2] == ("dispatched_at", "order_id")


def test_order_search_projection_holds_every_item_field() -> None:
    selected = re.search(r"SELECT (.*) ORDER BY", schema.BY_ORDER_PROJECTION)
    assert selected is not None
    assert selected.group(1).split(", ") == list(schema.ITEM_FIELDS)


def test_the_page_puts_every_recorded_reason_in_words_in_both_languages() -> None:
    text = I18N.read_text()
    block = text[text.index("const REASONS") :]
    block = block[: block.index("\n};")]
    for language in ("en", '"pt-BR"'):
        words = block[block.index(f"{language}: {{") + len(language) + 3 :]
        words = words[: words.index("}")]
        keys = set(re.findall(r"(\w+):", words))
        assert keys == set(ATTEMPT_REASONS), language
