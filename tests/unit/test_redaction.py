"""What viewers see of headers and URLs: every rule-supplied value and credential masked."""

from __future__ import annotations

import pytest

from disparo.redaction import MASK, redacted, shown_url, url_matches_shown


def test_every_rule_header_and_the_signature_are_masked_only_disparos_own_kept() -> None:
    sent = {
        "X-Auth": "abc",
        "Authentication": "Basic eA==",
        "X-Hub-Signature": "sha1=ff",
        "X-Tenant": "acme",
        "user-agent": "disparo/1",
        "content-type": "application/json",
        "webhook-id": "msg_1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": "v1,xyz",
        "disparo-test": "1",
    }
    assert redacted(sent) == {
        "X-Auth": MASK,
        "Authentication": MASK,
        "X-Hub-Signature": MASK,
        "X-Tenant": MASK,
        "user-agent": "disparo/1",
        "content-type": "application/json",
        "webhook-id": "msg_1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": MASK,
        "disparo-test": "1",
    }


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:p@h.example/x", f"https://{MASK}@h.example/x"),
        ("https://tokenonly@h.example/x", f"https://{MASK}@h.example/x"),
        ("https://h.example/x?token=t1&page=2", f"https://h.example/x?token={MASK}&page=2"),
        ("https://h.example/x?api_key=k&sig=s", f"https://h.example/x?api_key={MASK}&sig={MASK}"),
        ("https://h.example/x?c=aB3dE5fG7hJ9kL1mN3pQ5rS7", f"https://h.example/x?c={MASK}"),
        ("https://h.example:8443/x?page=2&flag", "https://h.example:8443/x?page=2&flag"),
        ("https://h.example/in", "https://h.example/in"),
    ],
)
def test_urls_lose_their_credentials_and_secret_looking_query_values(url: str, shown: str) -> None:
    assert shown_url(url) == shown
    assert "u:p" not in shown_url(url)
    assert "t1" not in shown_url(url).split("?")[-1]


def test_a_masked_url_sent_back_is_recognised_as_the_current_one() -> None:
    current = "https://u:p@h.example/x?token=t1"
    assert url_matches_shown(shown_url(current), current)
    assert not url_matches_shown("https://h.example/x?token=t1", current)
    assert not url_matches_shown(f"https://{MASK}@other.example/x?token={MASK}", current)
