"""Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`."""

from __future__ import annotations

import base64
import hashlib
import hmac

from disparo.schemas import secret_bytes


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one message."""
    key = secret_bytes(secret)
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_headers(
    secret: str, msg_id: str, timestamp: int, body: bytes, previous: str | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers for one message.

    During a rotation's overlap the previous secret signs too (`v1,<new> v1,<old>`), so a
    receiver that knows either secret verifies the webhook.
    """
    signatures = [sign(secret, msg_id, timestamp, body)]
    if previous:
        signatures.append(sign(previous, msg_id, timestamp, body))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
    }
