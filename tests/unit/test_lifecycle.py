"""An account's order lifecycle and the status guard's decisions, without I/O."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from disparo.accounts import AccountFields
from disparo.lifecycle import Lifecycle, check, holds_after
from tests.factories import rule

SHIPPING = Lifecycle(
    statuses=("created", "dispatched", "in_transit", "delivered", "returned_to_sender"),
    allowed_back=(("delivered", "in_transit"),),
)
DELIVERY = Lifecycle(
    statuses=("dispatched", "in_transit", "returned", "delivered"),
    allowed_back=(("delivered", "returned"),),
)


def test_a_status_below_the_one_held_is_regressed_and_names_it() -> None:
    found = check(DELIVERY, "in_transit", "delivered")
    assert (found.regressed, found.after, found.unranked) == (True, "delivered", False)


@pytest.mark.parametrize(
    ("status", "held"),
    [
        ("delivered", None),  # nothing delivered yet
        ("delivered", "in_transit"),  # forward
        ("in_transit", "in_transit"),  # the same status again (a repeated scan)
        ("returned", "delivered"),  # an allowed step back
        ("in_transit", "lost_in_space"),  # held status no longer in the lifecycle
    ],
)
def test_forward_repeated_and_allowed_steps_back_are_sent(status: str, held: str | None) -> None:
    found = check(DELIVERY, status, held)
    assert (found.regressed, found.unranked) == (False, False)


@pytest.mark.parametrize("status", ["customs_hold", None])
def test_a_status_the_lifecycle_does_not_name_passes_and_is_marked_unranked(
    status: str | None,
) -> None:
    found = check(DELIVERY, status, "delivered")
    assert (found.regressed, found.unranked) == (False, True)


def test_what_the_customer_holds_moves_forward_back_only_by_allowed_steps() -> None:
    assert holds_after(DELIVERY, None, "dispatched") == "dispatched"
    assert holds_after(DELIVERY, "dispatched", "delivered") == "delivered"
    assert holds_after(DELIVERY, "delivered", "returned") == "returned"  # allowed step back
    assert holds_after(DELIVERY, "returned", "in_transit") == "returned"  # (a manual resend)
    assert holds_after(DELIVERY, "returned", "customs_hold") == "returned"  # unranked
    assert holds_after(SHIPPING, "delivered", "in_transit") == "in_transit"
    # After a step back, the order goes on from there: in_transit again is not a regression.
    assert not check(SHIPPING, "in_transit", "in_transit").regressed
    assert check(SHIPPING, "dispatched", "in_transit").regressed


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"statuses": ["a", "b", "a"]}, "named twice"),
        ({"statuses": ["a", "b"], "allowed_back": [["b", "c"]]}, "'c', which is not in statuses"),
        ({"statuses": ["a", "b"], "allowed_back": [["a", "b"]]}, "is not a step back"),
        ({"statuses": []}, "at least 1"),
        ({"statuses": [" a"]}, "not padded"),
        ({"statuses": ["x" * 201]}, "1-200 characters"),
        ({"statuses": [str(i) for i in range(51)]}, "at most 50"),
        ({"statuses": ["a"], "extra": 1}, "Extra inputs"),
    ],
)
def test_a_bad_lifecycle_is_refused_naming_the_problem(
    body: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        AccountFields(name="acme", lifecycle=body)
    assert message in str(refused.value)
    assert "lifecycle" in str(refused.value)


def test_an_account_keeps_its_lifecycle_through_json() -> None:
    account = AccountFields(
        name="acme",
        lifecycle={"statuses": ["dispatched", "delivered"], "allowed_back": []},
    )
    assert AccountFields.model_validate_json(account.model_dump_json()) == account
    assert account.model_dump(mode="json")["lifecycle"] == {
        "statuses": ["dispatched", "delivered"],
        "allowed_back": [],
    }


def test_a_rule_takes_off_or_forward_only_as_its_status_guard() -> None:
    assert rule().status_guard == "off"
    assert rule(status_guard="forward_only").status_guard == "forward_only"
    with pytest.raises(ValidationError) as refused:
        rule(status_guard="sometimes")
    assert "status_guard" in str(refused.value)
