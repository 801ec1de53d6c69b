"""Rule secrets sealed for the rules topic: AES-GCM under DISPARO_SECRET_KEY."""

from __future__ import annotations

import json

import pytest

from disparo.errors import SettingsError
from disparo.rule_codec import decode_rule, encode_rule, unusable
from disparo.schemas import DeliveryTarget, Rule, generate_secret
from disparo.secret_box import SecretBox, SecretKeyMismatch, is_sealed, new_key_text


def a_rule(**fields: object) -> Rule:
    base = {
        "id": 1000,
        "name": "r",
        "event_types": ["*"],
        "url": "https://example.com/hook",
        "secret": generate_secret(),
        "headers": {"Authorization": "Bearer customer-token"},
    }
    return Rule.model_validate({**base, **fields})


def test_a_sealed_rule_holds_no_secret_or_header_value_and_opens_back() -> None:
    box = SecretBox(new_key_text())
    rule = a_rule()
    stored = encode_rule(rule, box)
    assert rule.secret.encode() not in stored
    assert b"customer-token" not in stored
    data = json.loads(stored)
    assert is_sealed(data["secret"])
    assert is_sealed(data["headers"]["Authorization"])
    assert decode_rule(stored, box) == rule


def test_the_wrong_key_is_named_and_the_previous_key_opens_old_records() -> None:
    old, new = new_key_text(), new_key_text()
    stored = encode_rule(a_rule(), SecretBox(old))
    with pytest.raises(SecretKeyMismatch, match="DISPARO_SECRET_KEY"):
        decode_rule(stored, SecretBox(new))
    rewrapping = SecretBox(new, previous_text=old)
    rule = decode_rule(stored, rewrapping)
    again = encode_rule(rule, rewrapping)
    assert rewrapping.sealed_with_current(json.loads(again)["secret"])
    assert decode_rule(again, SecretBox(new)) == rule


@pytest.mark.parametrize(
    "change", [{"id": 1001}, {"url": "https://attacker.example/hook"}, {"version": 9}]
)
def test_a_record_pointing_a_rule_elsewhere_opens_nothing_and_sends_nothing(
    change: dict[str, object],
) -> None:
    box = SecretBox(new_key_text())
    rule = a_rule()
    data = {**json.loads(encode_rule(rule, box)), **change}  # written straight to the topic
    read = decode_rule(json.dumps(data).encode(), box)
    if "version" in change:  # the id and URL it was sealed for: it opens
        assert (read.secret, read.headers) == (rule.secret, rule.headers)
        return
    assert unusable(read)
    assert not read.active
    assert (read.deactivated_reason or "").startswith("target_changed")
    assert read.secret != rule.secret
    assert read.headers == {}
    assert DeliveryTarget.unusable(read).refused == read.deactivated_reason


def test_plain_and_unbound_values_open_until_rewrap_makes_reading_strict() -> None:
    box = SecretBox(new_key_text())
    rule = a_rule()
    plain = rule.model_dump_json().encode()
    assert decode_rule(plain, box) == rule
    assert unusable(decode_rule(plain, box, strict=True))
    data = json.loads(plain)  # sealed the way records were before URLs were bound in
    data["secret"] = box.seal(rule.secret, "rule/1000/secret")
    data["headers"] = {
        "Authorization": box.seal("Bearer customer-token", "rule/1000/header/authorization")
    }
    unbound = json.dumps(data).encode()
    assert decode_rule(unbound, box) == rule
    assert unusable(decode_rule(unbound, box, strict=True))
    assert decode_rule(encode_rule(rule, box), box, strict=True) == rule


def test_records_from_before_sealing_are_read_as_they_are() -> None:
    rule = a_rule()
    assert decode_rule(rule.model_dump_json().encode(), SecretBox(new_key_text())) == rule


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (None, "DISPARO_SECRET_KEY is not set"),
        ("", "is not set"),
        ("%%%", "not base64"),
        ("YWJj", "32 bytes"),
    ],
)
def test_a_missing_or_malformed_key_names_the_variable(key: str | None, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        SecretBox(key)
