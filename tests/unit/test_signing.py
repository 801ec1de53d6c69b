import json
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from consumers.signing import sign, webhook_headers
from disparo.schemas import generate_secret


def test_signature_verifies_with_the_standard_webhooks_reference_library() -> None:
    secret = generate_secret()
    body = json.dumps({"type": "order.dispatched", "data": {"order_id": "A-1"}}).encode()
    headers = webhook_headers(secret, "msg_123", int(time.time()), body)
    payload = Webhook(secret).verify(body, headers)
    assert payload["data"]["order_id"] == "A-1"


def test_reference_library_rejects_a_tampered_body() -> None:
    secret = generate_secret()
    headers = webhook_headers(secret, "msg_1", int(time.time()), b'{"a":1}')
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"a":2}', headers)


def test_signature_has_v1_prefix_and_depends_on_id_and_timestamp() -> None:
    secret = generate_secret()
    first = sign(secret, "msg_1", 1700000000, b"{}")
    assert first.startswith("v1,")
    assert first != sign(secret, "msg_2", 1700000000, b"{}")
    assert first != sign(secret, "msg_1", 1700000001, b"{}")
    assert first == sign(secret, "msg_1", 1700000000, b"{}")
