"""Rules as they are stored in the rules topic: secrets and header values sealed."""

from __future__ import annotations

import json
from typing import Any

from disparo.schemas import Rule
from disparo.secret_box import SecretBox

SEALED_FIELDS = ("secret", "previous_secret")


def _contexts(rule_id: Any) -> tuple[str, str]:
    return f"rule/{rule_id}/", f"rule/{rule_id}/header/"


def encode_rule(rule: Rule, box: SecretBox) -> bytes:
    """The rules-topic value of a rule: every secret and header value sealed."""
    data = rule.model_dump(mode="json")
    field_ctx, header_ctx = _contexts(rule.id)
    for name in SEALED_FIELDS:
        if data.get(name):
            data[name] = box.seal(data[name], field_ctx + name)
    data["headers"] = {
        k: box.seal(v, header_ctx + k.lower()) for k, v in data.get("headers", {}).items()
    }
    return json.dumps(data, separators=(",", ":")).encode()


def decode_rule(raw: bytes, box: SecretBox) -> Rule:
    """A rule from its rules-topic value (values stored before sealing are read as they are).

    Raises ValueError (pydantic's ValidationError is one) for a value that is not a rule,
    SecretKeyMismatch for one sealed under a key this process does not hold.
    """
    data = json.loads(raw)
    if not isinstance(data, dict) or not isinstance(data.get("headers", {}), dict):
        raise ValueError("a rule record must be a JSON object with a headers object")
    field_ctx, header_ctx = _contexts(data.get("id"))
    for name in SEALED_FIELDS:
        if isinstance(data.get(name), str):
            data[name] = box.open(data[name], field_ctx + name)
    headers = data.get("headers", {})
    data["headers"] = {k: box.open(str(v), header_ctx + k.lower()) for k, v in headers.items()}
    return Rule.model_validate(data)
