from disparo.matching import (
    MISSING,
    field_value,
    filter_fields,
    matches,
    matching_rules,
    passes_filters,
    why_not,
)
from disparo.schemas import DEFAULT_ACCOUNT
from tests.factories import event, rule


def test_rule_matches_listed_event_type_only() -> None:
    r = rule(event_types=["order.dispatched"])
    assert matches(r, event(event_type="order.dispatched"))
    assert not matches(r, event(event_type="tracking.updated"))


def test_star_matches_every_event_type() -> None:
    r = rule(event_types=["*"])
    assert matches(r, event(event_type="pre_invoice.created"))
    assert matches(r, event(event_type="anything.else"))


def test_inactive_rule_matches_nothing() -> None:
    assert not matches(rule(active=False, event_types=["*"]), event())


def test_filters_on_event_fields_and_nested_payload() -> None:
    e = event(order_status="dispatched", payload={"carrier": "acme", "weight": {"kg": 2}})
    assert passes_filters(e, {"order_status": ["dispatched", "delivered"]})
    assert passes_filters(e, {"payload.carrier": ["acme"], "payload.weight.kg": ["2"]})
    assert not passes_filters(e, {"payload.carrier": ["other"]})
    assert not passes_filters(e, {"payload.missing": ["x"]})
    assert not passes_filters(e, {"order_status": ["cancelled"]})


def test_filter_on_absent_optional_field_does_not_match() -> None:
    assert not passes_filters(event(order_status=None), {"order_status": ["dispatched"]})


def test_field_value_rejects_unknown_paths() -> None:
    e = event()
    assert field_value(e, "order_id") == "ORD-1"
    assert not passes_filters(e, {"no_such_field": ["x"]})


def test_boolean_payload_values_compare_as_lowercase_text() -> None:
    e = event(payload={"express": True})
    assert passes_filters(e, {"payload.express": ["true"]})
    assert not passes_filters(e, {"payload.express": ["True"]})


def test_matching_rules_returns_every_match_in_id_order() -> None:
    rules = [
        rule(id=3, event_types=["*"]),
        rule(id=1, event_types=["order.dispatched"]),
        rule(id=2, event_types=["tracking.updated"]),
        rule(id=4, event_types=["*"], active=False),
    ]
    assert [r.id for r in matching_rules(rules, event())] == [1, 3]


def test_an_event_matches_only_rules_of_its_own_account() -> None:
    for_a = rule(id=1, event_types=["*"], account_id="acct-a")
    for_b = rule(id=2, event_types=["*"], account_id="acct-b")
    default = rule(id=3, event_types=["*"])
    assert default.account_id == DEFAULT_ACCOUNT
    rules = (for_a, for_b, default)
    assert [r.id for r in matching_rules(rules, event(account_id="acct-a"))] == [1]
    assert [r.id for r in matching_rules(rules, event(account_id="acct-b"))] == [2]
    assert [r.id for r in matching_rules(rules, event())] == [3]  # producers without accounts


def test_why_not_names_what_kept_the_rule_from_the_event() -> None:
    e = event(event_type="order.dispatched", payload={"carrier": "correios", "box": {"kg": 2}})
    assert why_not(rule(event_types=["*"]), e) is None
    assert why_not(rule(event_types=["tracking.updated"]), e) == (
        'event_type is "order.dispatched", rule takes ["tracking.updated"]'
    )
    wants = {"payload.carrier": ["correios"], "payload.box": ["2"], "payload.gone": ["x"]}
    assert why_not(rule(event_types=["*"], filters=wants), e) == (
        'payload.box is {"kg": 2}, rule wants ["2"]'
    )
    assert why_not(rule(event_types=["*"], filters={"payload.gone": ["x"]}), e) == (
        'payload.gone is missing, rule wants ["x"]'
    )
    assert why_not(rule(event_types=["*"], account_id="other"), e) == (
        f'account_id is "{DEFAULT_ACCOUNT}", rule is of account "other"'
    )
    # a filter on event_type is told apart from the rule's own event types
    assert why_not(rule(event_types=["*"], filters={"event_type": ["x"]}), e) == (
        'event_type is "order.dispatched", rule wants ["x"]'
    )


def test_a_path_ending_in_a_dot_names_the_empty_key_as_the_events_table_does() -> None:
    e = event(payload={"": "acme", "w": {"": 1}})
    assert field_value(e, "payload.") == "acme"
    assert field_value(e, "payload.w.") == 1
    assert field_value(e, "order_id.") is MISSING
    assert filter_fields(e)["payload."] == "acme"
