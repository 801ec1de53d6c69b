"""Rule secrets sealed for the rules topic: AES-GCM under DISPARO_SECRET_KEY."""

from __future__ import annotations

import json

import pytest

from disparo.errors import SettingsError
from disparo.rule_codec import decode_rule, encode_rule
from disparo.schemas import Rule, generate_secret
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


def test_a_secret_moved_to_another_rule_does_not_open() -> None:
    box = SecretBox(new_key_text())
    data = json.loads(encode_rule(a_rule(), box))
    data["id"] = 1001  # the sealed secret is bound to rule 1000
    with pytest.raises(SecretKeyMismatch, match="altered or copied"):
        decode_rule(json.dumps(data).encode(), box)


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
