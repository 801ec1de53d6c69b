"""One delivery attempt: sign, POST with httpx, and describe what happened."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime

import httpx

from consumers import classify, metrics
from consumers.signing import webhook_headers
from consumers.targets import refusal
from disparo.schemas import AttemptOutcome, DispatchJob, now_utc


def webhook_body(job: DispatchJob) -> bytes:
    """The JSON body of a webhook: Standard Webhooks' `type`, `timestamp` and `data`."""
    event = job.event
    document = {
        "type": event.event_type,
        "timestamp": event.occurred_at.isoformat(),
        "data": event.model_dump(mode="json"),
    }
    return json.dumps(document, separators=(",", ":")).encode()


class Deliverer:
    """Delivers dispatch jobs over one shared httpx client."""

    def __init__(
        self, client: httpx.AsyncClient, *, allow_private: bool, excerpt_bytes: int = 1024
    ) -> None:
        self.client = client
        self.allow_private = allow_private
        self.excerpt_bytes = excerpt_bytes

    async def deliver(self, job: DispatchJob) -> AttemptOutcome:
        """POST one job once and return the outcome of that attempt (never raises for I/O)."""
        body = webhook_body(job)
        started_at = now_utc()
        started = time.perf_counter()
        refused = refusal(job.target.url, self.allow_private)
        if refused is not None:
            return self._outcome(job, started_at, 0.0, None, classify.TARGET_REFUSED, refused, body)
        headers = {
            **job.target.headers,
            "content-type": "application/json",
            **webhook_headers(job.target.secret, job.dispatch_id, int(time.time()), body),
        }
        try:
            async with asyncio.timeout(job.target.timeout_s):
                response = await self.client.post(
                    job.target.url, content=body, headers=headers, timeout=job.target.timeout_s
                )
                answer = response.content[: self.excerpt_bytes]
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            elapsed = time.perf_counter() - started
            reason = classify.reason_for_error(exc)
            text = classify.describe_error(exc)
            if reason == classify.TIMEOUT:
                text = f"no answer within {job.target.timeout_s:g}s ({text})"
            return self._outcome(job, started_at, elapsed, None, reason, text, body)
        elapsed = time.perf_counter() - started
        reason = classify.reason_for_status(response.status_code)
        error = None if reason == classify.SUCCESS else f"HTTP {response.status_code}"
        return self._outcome(
            job, started_at, elapsed, response.status_code, reason, error, body, answer
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
    ) -> AttemptOutcome:
        ok = reason == classify.SUCCESS
        metrics.DELIVERIES.labels("success" if ok else "failure", reason).inc()
        metrics.DELIVERY_SECONDS.observe(elapsed)
        event = job.event
        return AttemptOutcome(
            attempt_id=job.attempt_id,
            dispatch_id=job.dispatch_id,
            attempt=job.attempt,
            manual=job.manual,
            order_id=event.order_id,
            order_status=event.order_status,
            event_id=str(event.event_id),
            event_type=event.event_type,
            rule_id=job.target.rule_id,
            url=job.target.url,
            dispatched_at=started_at,
            status="success" if ok else "failure",
            reason=reason,
            http_status=status,
            error=error,
            duration_ms=round(elapsed * 1000),
            # No retry tier re-queues failures yet, so every attempt is its dispatch's last.
            final=True,
            request_excerpt=body[: self.excerpt_bytes].decode(errors="replace"),
            response_excerpt=answer.decode(errors="replace"),
        )
