"""Rules as they are stored in the rules topic: secrets and header values sealed.

Each sealed value is bound to its rule's id and URL (AES-GCM associated data): a record
written to the topic by anyone but the API that points a rule elsewhere, or copies another
rule's values, opens nothing. Such a rule is read as inactive with a `target_changed`
reason and an unusable secret, so it delivers nothing until the API saves it again.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from disparo.schemas import SECRET_PREFIX, Rule
from disparo.secret_box import SealMismatch, SecretBox, is_sealed

SEALED_FIELDS = ("secret", "previous_secret")
TARGET_CHANGED = "target_changed"
# The secret of a rule whose stored values do not open: signs nothing (never delivered).
UNSEALED_SECRET = SECRET_PREFIX + base64.b64encode(bytes(32)).decode()
# The rules-topic record `disparo secrets rewrap` writes when every rule is sealed and bound:
# from then on a plain-text or unbound value is refused like an altered one.
STRICT_KEY = b"sealing"


def _contexts(rule_id: Any, url: Any, bound: bool = True) -> tuple[str, str]:
    base = f"rule/{rule_id}/{url}/" if bound else f"rule/{rule_id}/"
    return base, base + "header/"


def encode_rule(rule: Rule, box: SecretBox) -> bytes:
    """The rules-topic value of a rule: every secret and header value sealed, bound to the
    rule's id and URL."""
    data = rule.model_dump(mode="json")
    field_ctx, header_ctx = _contexts(rule.id, data["url"])
    for name in SEALED_FIELDS:
        if data.get(name):
            data[name] = box.seal(data[name], field_ctx + name)
    data["headers"] = {
        k: box.seal(v, header_ctx + k.lower()) for k, v in data.get("headers", {}).items()
    }
    return json.dumps(data, separators=(",", ":")).encode()


def decode_rule(raw: bytes, box: SecretBox, strict: bool = False) -> Rule:
    """A rule from its rules-topic value.

    Values sealed before they were bound to the URL, and plain ones, are read as they are
    unless `strict`. A value that does not open (altered, or the rule's URL or id changed
    outside the API) gives the rule as inactive, `target_changed`. Raises ValueError
    (pydantic's ValidationError is one) for a value that is not a rule, SecretKeyMismatch
    for one sealed under a key this process does not hold.
    """
    data = json.loads(raw)
    if not isinstance(data, dict) or not isinstance(data.get("headers", {}), dict):
        raise ValueError("a rule record must be a JSON object with a headers object")
    try:
        return Rule.model_validate(_opened(data, box, bound=True, strict=strict))
    except SealMismatch as bound_exc:
        why = str(bound_exc)
    if not strict:
        try:
            return Rule.model_validate(_opened(data, box, bound=False, strict=False))
        except SealMismatch:
            pass
    return _unusable(data, why)


def _opened(data: dict[str, Any], box: SecretBox, bound: bool, strict: bool) -> dict[str, Any]:
    field_ctx, header_ctx = _contexts(data.get("id"), data.get("url"), bound)
    out = dict(data)
    for name in SEALED_FIELDS:
        if isinstance(data.get(name), str):
            out[name] = _open(box, data[name], field_ctx + name, strict)
    out["headers"] = {
        k: _open(box, str(v), header_ctx + k.lower(), strict)
        for k, v in data.get("headers", {}).items()
    }
    return out


def _open(box: SecretBox, text: str, context: str, strict: bool) -> str:
    if strict and not is_sealed(text):
        raise SealMismatch("a plain-text value, refused since `disparo secrets rewrap` ran")
    return box.open(text, context)


def _unusable(data: dict[str, Any], why: str) -> Rule:
    """The rule as the API shows it: inactive, saying why; secrets and headers unusable."""
    reason = (
        f"{TARGET_CHANGED}: its secrets do not open for this URL and id ({why}); its record "
        "was written outside the API. Nothing is delivered until an admin saves the rule "
        "through the API with its secret (PUT with `secret`)"
    )
    safe = {k: v for k, v in data.items() if k not in (*SEALED_FIELDS, "headers")}
    fields = {**safe, "secret": UNSEALED_SECRET, "active": False, "deactivated_reason": reason}
    return Rule.model_validate(fields)


def unusable(rule: Rule) -> bool:
    """Whether a rule was read from a record whose secrets do not open (`target_changed`)."""
    return rule.secret == UNSEALED_SECRET
