"""Filter operators: what each passes, and the message a malformed one gets."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from disparo.filters import number_of, passes, spec_problem
from disparo.matching import passes_filters, why_not
from disparo.schemas import RuleFields
from tests.factories import event, rule


@pytest.mark.parametrize(
    ("spec", "text", "expected"),
    [
        (["a", "b"], "a", True),
        (["a", "b"], "c", False),
        (["a"], None, False),
        ({"not": ["a"]}, "a", False),
        ({"not": ["a"]}, "b", True),
        ({"not": ["a"]}, None, True),
        ({"gt": 5}, "6", True),
        ({"gt": 5}, "5", False),
        ({"gte": 5}, "5.0", True),
        ({"lt": 0.5}, "-1e3", True),
        ({"lte": -2}, "-2", True),
        ({"gt": 1}, "1e1", True),
        ({"gt": 0}, "0x10", False),
        ({"gt": 0}, " 5", False),
        ({"lt": 10}, "inf", False),
        ({"gt": 0}, None, False),
        ({"exists": True}, "", True),
        ({"exists": True}, None, False),
        ({"exists": False}, None, True),
        ({"exists": False}, "x", False),
        ({"prefix": "BR"}, "BR-123", True),
        ({"prefix": "BR"}, "br-123", False),
        ({"prefix": "BR"}, None, False),
    ],
)
def test_each_operator_passes_what_it_names(spec: Any, text: str | None, expected: bool) -> None:
    assert passes(spec, text) is expected


def test_only_decimal_texts_are_numbers() -> None:
    assert number_of("12.5") == 12.5
    assert number_of("-3E2") == -300.0
    assert [number_of(t) for t in ("", "1.", ".5", "1_000", "\u0661", "nan", "true")] == [None] * 7


def test_filters_read_numbers_and_booleans_of_the_payload_as_text() -> None:
    e = event(payload={"kg": 12, "express": True, "zip": "01310-100"})
    assert passes_filters(e, {"payload.kg": {"gte": 12}, "payload.zip": {"prefix": "013"}})
    assert passes_filters(
        e, {"payload.express": {"not": ["false"]}, "payload.x": {"exists": False}}
    )
    assert not passes_filters(e, {"payload.kg": {"lt": 12}})


def test_why_not_names_the_operator_the_event_failed() -> None:
    r = rule(event_types=["*"], filters={"payload.kg": {"gt": 20}})
    assert why_not(r, event(payload={"kg": 3})) == 'payload.kg is 3, rule wants {"gt": 20}'


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"between": [1, 2]}, "unknown operator 'between'"),
        ({"gt": "5"}, "'gt' takes a number, not str"),
        ({"gt": True}, "'gt' takes a number, not bool"),
        ({"exists": "yes"}, "'exists' takes true or false"),
        ({"prefix": ""}, "'prefix' takes a text of 1 to 200 characters"),
        ({"not": []}, "'not' needs 1 to 100 values"),
        ({"gt": 1, "lt": 5}, "one operator object"),
        ([], "needs 1 to 100 values"),
        ([1], "needs a list of texts"),
        (5, "must be a list of values or one operator object"),
    ],
)
def test_a_malformed_filter_is_refused_naming_its_path(spec: Any, message: str) -> None:
    assert message in (spec_problem(spec) or "")
    with pytest.raises(ValidationError) as refused:
        RuleFields.model_validate(
            {
                "name": "r",
                "event_types": ["*"],
                "url": "https://x.test/",
                "filters": {"payload.kg": spec},
            }
        )
    assert f"filter 'payload.kg' {spec_problem(spec)}" in str(refused.value)
