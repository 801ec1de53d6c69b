import asyncio
import json

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from consumers import classify
from consumers.delivery import Deliverer
from disparo.schemas import AttemptOutcome, DispatchJob
from disparo.targets import parse_allowlist
from tests.factories import job


def _deliver(handler: object, j: DispatchJob, allowlist: str = "") -> AttemptOutcome:
    async def go() -> AttemptOutcome:
        transport = httpx.MockTransport(handler)  # type: ignore[arg-type]
        return await Deliverer(transport, allowlist=parse_allowlist(allowlist)).deliver(j)

    return asyncio.run(go())


def test_2xx_is_success_with_a_verifiable_standard_webhooks_signature() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    j = job()
    outcome = _deliver(handler, j)
    assert (outcome.status, outcome.reason, outcome.http_status) == ("success", "ok", 204)
    request = seen[0]
    assert request.headers["webhook-id"] == j.dispatch_id
    body = Webhook(j.target.secret).verify(request.content, dict(request.headers))
    assert body["type"] == "order.dispatched"
    assert body["data"]["order_id"] == j.event.order_id
    assert json.loads(outcome.request_excerpt)["data"]["event_id"] == str(j.event.event_id)
    assert outcome.dispatch_id == j.dispatch_id
    assert outcome.attempt_id == j.attempt_id


def test_rule_headers_are_sent_alongside_signature_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    outcome = _deliver(handler, job(headers={"x-tenant": "acme", "Authorization": "Bearer s3"}))
    assert seen[0].headers["x-tenant"] == "acme"
    assert seen[0].headers["authorization"] == "Bearer s3"
    assert seen[0].headers["content-type"] == "application/json"
    # The record names every header sent; rule values and the signature read masked.
    recorded = outcome.request_headers
    assert recorded["x-tenant"] == recorded["Authorization"] == "********"
    assert recorded["webhook-signature"] == "********"
    assert recorded["webhook-id"] == seen[0].headers["webhook-id"]


@pytest.mark.parametrize(
    ("status", "reason"), [(503, classify.HTTP_5XX), (410, classify.HTTP_4XX), (302, "http_other")]
)
def test_non_2xx_is_a_failure_with_status_and_response_excerpt(status: int, reason: str) -> None:
    outcome = _deliver(lambda r: httpx.Response(status, text="busy"), job())
    assert (outcome.status, outcome.reason, outcome.http_status) == ("failure", reason, status)
    assert outcome.error == f"HTTP {status}"
    assert outcome.response_excerpt == "busy"


def test_connection_refused_is_classified_as_connection() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    outcome = _deliver(handler, job())
    assert (outcome.status, outcome.reason, outcome.http_status) == ("failure", "connection", None)
    assert "refused" in (outcome.error or "")


def test_timeout_is_classified_as_timeout_and_names_the_limit() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    outcome = _deliver(handler, job(timeout_s=2.5))
    assert outcome.reason == classify.TIMEOUT
    assert "2.5s" in (outcome.error or "")


def test_slow_endpoint_hits_the_overall_deadline() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    outcome = _deliver(handler, job(timeout_s=0.2))
    assert outcome.reason == classify.TIMEOUT
    assert outcome.duration_ms < 2000


def test_private_targets_are_refused_unless_allow_listed() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200)

    refused = _deliver(handler, job(url="http://127.0.0.1:9/hook"))
    assert (refused.status, refused.reason) == ("failure", classify.TARGET_REFUSED)
    assert "DISPARO_TARGET_ALLOWLIST" in (refused.error or "")
    assert calls == []
    other_port = _deliver(handler, job(url="http://127.0.0.1:9/hook"), "127.0.0.1:8080")
    assert other_port.reason == classify.TARGET_REFUSED
    allowed = _deliver(handler, job(url="http://127.0.0.1:9/hook"), "127.0.0.1:9")
    assert allowed.status == "success"
    assert len(calls) == 1


def test_an_oversized_response_fails_as_response_too_large() -> None:
    huge = "x" * (1024 * 1024 + 10)
    outcome = _deliver(lambda r: httpx.Response(200, text=huge), job())
    assert (outcome.status, outcome.reason, outcome.http_status) == (
        "failure",
        classify.RESPONSE_TOO_LARGE,
        200,
    )
    assert "1024 KiB" in (outcome.error or "")
    assert len(outcome.response_excerpt) == 1024


def test_a_url_httpx_cannot_build_is_invalid_url_and_never_sent() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200)

    base = job()  # a stored rule's target: no URL validation on the way
    bad = base.target.model_copy(update={"url": "http://ex\x00ample.com/in"})
    outcome = _deliver(handler, base.with_target(bad))
    assert (outcome.status, outcome.reason) == ("failure", classify.INVALID_URL)
    assert "non-printable" in (outcome.error or "")
    assert calls == []


def test_only_a_test_webhook_carries_the_disparo_test_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    real = job()
    _deliver(handler, real)
    _deliver(handler, real.model_copy(update={"test": True, "manual": True}))
    assert [r.headers.get("disparo-test") for r in seen] == [None, "1"]


def test_a_rule_header_cannot_pass_for_disparo_s_own() -> None:
    outcome = _deliver(lambda _: httpx.Response(200), job(headers={"Disparo-Test": "1"}))
    assert outcome.status == "failure"
    assert "set by disparo" in (outcome.error or "")
