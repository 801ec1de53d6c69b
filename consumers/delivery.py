"""One delivery attempt: sign, POST with httpx, and describe what happened."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

import httpx
from pydantic_core import to_json

from consumers import classify, metrics
from consumers.attempt import Attempt
from consumers.reach import Reach
from consumers.retry_policy import parse_retry_after
from consumers.signing import webhook_headers
from consumers.targets import refusal_cached
from consumers.transport import MAX_BODY_BYTES, parsed_url
from disparo.limits import request_problem
from disparo.redaction import redacted, shown_url
from disparo.schemas import (
    TEST_EVENT_TYPE,
    TEST_HEADER,
    DispatchJob,
    Status,
    now_utc,
)
from disparo.targets import AllowEntry


def webhook_body(job: DispatchJob, data: str | None = None) -> bytes:
    """The JSON body of a webhook: Standard Webhooks' `type`, `timestamp` and `data`."""
    event = job.event
    head = to_json({"type": event.event_type, "timestamp": event.occurred_at})
    # The event is serialised by pydantic's Rust core and spliced in as `data`.
    data = event.model_dump_json() if data is None else data
    return head[:-1] + b',"data":' + data.encode() + b"}"


log = logging.getLogger(__name__)
USER_AGENT = "disparo-webhooks/0.1"
MAX_RESPONSE_BYTES = MAX_BODY_BYTES


async def _read_some(response: httpx.Response, limit: int) -> bytes:
    """Up to `limit` + 1 bytes of the response body (one more tells it was too large), read
    from the transport's stream as it came: raw, never decoded or buffered whole."""
    stream = response.stream
    if not isinstance(stream, httpx.AsyncByteStream):  # no async transport answers so
        raise TypeError(f"the transport answered with a sync stream: {type(stream).__name__}")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in stream:
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                break
    finally:
        await response.aclose()
    return b"".join(chunks)


class Deliverer:
    """Delivers dispatch jobs through one shared httpx transport."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        *,
        allowlist: tuple[AllowEntry, ...] = (),
        excerpt_bytes: int = 1024,
        reach: Reach | None = None,
    ) -> None:
        self.reach = reach or Reach(transport, allowlist)
        self.excerpt_bytes = excerpt_bytes

    async def deliver(self, job: DispatchJob) -> Attempt:
        """POST one job once and describe the attempt; never raises, whatever the endpoint does."""
        started_at = now_utc()
        started = time.perf_counter()
        body = b""
        try:
            data = job.event.model_dump_json()  # once: in the body, and in the attempt's row
            body = webhook_body(job, data)
            outcome = await self._post(job, body, started_at, started)
            outcome.event_json = data
            return outcome
        except Exception as exc:  # the net under everything else: one failed attempt, logged
            log.exception("unforeseen error delivering %s", job.dispatch_id)
            text = f"unexpected {type(exc).__name__}: {exc}"[:500]
            elapsed = time.perf_counter() - started
            return self._outcome(job, started_at, elapsed, None, classify.OTHER, text, body)

    async def _post(
        self, job: DispatchJob, body: bytes, started_at: datetime, started: float
    ) -> Attempt:
        transport, allowlist = self.reach.of(job.event.account_id)
        refused = refusal_cached(job.target.url, allowlist)
        if refused is not None:
            return self._outcome(job, started_at, 0.0, None, classify.TARGET_REFUSED, refused, body)
        problem = request_problem(job.target.url, job.target.headers)
        if problem is not None:  # a rule saved before the limits existed
            reason = classify.INVALID_REQUEST
            return self._outcome(job, started_at, 0.0, None, reason, problem, body)
        headers = self._headers(job, body)
        try:
            request = self._request(job, body, headers)
        except (httpx.InvalidURL, httpx.HTTPError, ValueError, UnicodeError) as exc:
            text = classify.describe_error(exc)
            return self._outcome(job, started_at, 0.0, None, classify.INVALID_URL, text, body)
        # The attempt's time is when the request is handed over, the body built and signed:
        # with many jobs starting at once, their building would count as the endpoint's time.
        started_at, started = now_utc(), time.perf_counter()
        try:
            async with asyncio.timeout(job.target.timeout_s):
                response = await transport.handle_async_request(request)
                answer = await _read_some(response, MAX_RESPONSE_BYTES)
        except (httpx.HTTPError, httpx.InvalidURL, OSError, TimeoutError) as exc:
            elapsed = time.perf_counter() - started
            reason = classify.reason_for_error(exc)
            text = classify.describe_error(exc)
            if reason == classify.TIMEOUT:
                text = f"no answer within {job.target.timeout_s:g}s ({text})"
            return self._outcome(
                job, started_at, elapsed, None, reason, text, body, headers=headers
            )
        elapsed = time.perf_counter() - started
        reason = classify.reason_for_status(response.status_code)
        error = None if reason == classify.SUCCESS else f"HTTP {response.status_code}"
        if len(answer) > MAX_RESPONSE_BYTES:
            reason = classify.RESPONSE_TOO_LARGE
            error = (
                f"HTTP {response.status_code} with a body over "
                f"{MAX_RESPONSE_BYTES // 1024} KiB; answer webhooks with a short body"
            )
        outcome = self._outcome(
            job,
            started_at,
            elapsed,
            response.status_code,
            reason,
            error,
            body,
            answer[: self.excerpt_bytes],
            headers,
        )
        if reason != classify.SUCCESS:
            outcome.retry_after_s = parse_retry_after(
                response.headers.get("retry-after"), started_at
            )
        return outcome

    @staticmethod
    def _headers(job: DispatchJob, body: bytes) -> dict[str, str]:
        target = job.target
        signed = webhook_headers(
            target.secret, job.dispatch_id, int(time.time()), body, target.previous_secret
        )
        headers = {
            "user-agent": USER_AGENT,
            **target.headers,
            "content-type": "application/json",
            **signed,
        }
        if job.test:  # receivers tell a test from a real webhook without reading the body
            headers[TEST_HEADER] = "1"
        return headers

    def without_attempt(
        self, job: DispatchJob, reason: str, error: str, status: Status = "failure"
    ) -> Attempt:
        """The outcome of a job that ends without a request (rule deleted, superseded)."""
        return self._outcome(job, now_utc(), 0.0, None, reason, error, b"", ended_as=status)

    @staticmethod
    def _request(job: DispatchJob, body: bytes, headers: dict[str, str]) -> httpx.Request:
        timeout = job.target.timeout_s
        limits = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        return httpx.Request(
            "POST",
            parsed_url(job.target.url),
            content=body,
            headers=headers,
            extensions={"timeout": limits},
        )

    def _outcome(
        self,
        job: DispatchJob,
        started_at: datetime,
        elapsed: float,
        status: int | None,
        reason: str,
        error: str | None,
        body: bytes,
        answer: bytes = b"",
        headers: dict[str, str] | None = None,
        ended_as: Status | None = None,
    ) -> Attempt:
        ok = reason == classify.SUCCESS
        ended_as = ended_as or ("success" if ok else "failure")
        if ended_as in ("success", "failure"):  # held, superseded, regressed: not deliveries
            metrics.bound(metrics.DELIVERIES, ended_as, reason).inc()
            metrics.DELIVERY_SECONDS.observe(elapsed)
        event = job.event
        # Every field is computed here from a validated job: plain data, nothing to validate.
        return Attempt(
            attempt_id=job.attempt_id,
            dispatch_id=job.dispatch_id,
            attempt=job.attempt,
            manual=job.manual,
            order_id=event.order_id,
            order_status=event.order_status,
            event_id=str(event.event_id),
            event_type=TEST_EVENT_TYPE if job.test else event.event_type,
            rule_id=job.target.rule_id,
            url=shown_url(job.target.url),
            account_id=event.account_id,
            dispatched_at=started_at,
            status=ended_as,
            reason=reason,
            http_status=status,
            error=error,
            duration_ms=round(elapsed * 1000),
            # A success ends the dispatch; for a failure the worker's retry policy decides.
            final=ok or ended_as in ("superseded", "regressed"),
            request_excerpt=body[: self.excerpt_bytes].decode(errors="replace"),
            response_excerpt=answer.decode(errors="replace"),
            request_headers=redacted(headers) if headers else {},
            event=job.event,
        )
