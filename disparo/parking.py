"""Parked endpoints: workers say which endpoints they defer jobs for; dispatchers route around.

A worker that starts deferring an endpoint's jobs (its circuit is open, or it hangs with its
whole backlog waiting) writes the endpoint and until when to the compacted
`parked-endpoints` topic; its next healthy answer from there removes the record. Meanwhile
the dispatcher sends a plain rule's jobs for that endpoint straight to a retry tier, due when
the park ends, so no worker fetches, parses and defers each of them again. The record is
advice: lost, late or expired, jobs simply take the ordinary path through `dispatch-jobs`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from disparo.compacted_view import CompactedView
from disparo.retry_tiers import Tier
from disparo.schemas import DispatchJob
from disparo.settings import KernelSettings
from disparo.topics import Topics

# No worker parks an endpoint for longer (an open circuit waits at most an hour): a record
# ending later was written by mistake or by a clock far ahead, and is ignored.
MAX_PARK_S = 3600.0
ParkReason = Literal["endpoint_busy", "circuit_open"]
# Why a worker defers a job: its endpoint (parked, see above), or its rule's rate (not).
DeferReason = Literal["endpoint_busy", "circuit_open", "rate_limited"]


def endpoint_of(url: str) -> str:
    """The host:port a URL's requests go to: the unit of protection."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{(parts.hostname or '').lower()}:{port}"


def endpoint_key(account_id: str, url: str) -> str:
    """The unit of protection: one account's requests to one host:port (`acme/h.example:443`).

    Breakers, slots, resend pacing and parking use it, so one account's endpoint that hangs
    or fails never slows or parks another account's webhooks to the same host.
    """
    return f"{account_id}/{endpoint_of(url)}"


def host_of(key: str) -> str:
    """The host:port of an endpoint key."""
    return key.partition("/")[2]


def park_tier(tiers: Sequence[Tier], wait_s: float) -> Tier:
    """The first retry tier that waits at least `wait_s` (the last one if none does)."""
    return next((t for t in tiers if t.delay_s >= wait_s), tiers[-1])


def back_at(now: datetime, wait_s: float, draw: float | None = None) -> datetime:
    """When a job parked for `wait_s` is due: up to 20% later, so returns spread out."""
    spread = random.random() if draw is None else draw
    return now + timedelta(seconds=wait_s * (1 + 0.2 * spread))


def park_job(
    job: DispatchJob, tiers: Sequence[Tier], wait_s: float, now: datetime
) -> tuple[Tier, DispatchJob]:
    """The retry tier a job parked for `wait_s` goes to, and the job as written there."""
    return park_tier(tiers, wait_s), job.model_copy(update={"not_before": back_at(now, wait_s)})


class ParkedEndpoint(BaseModel):
    """One `parked-endpoints` record: the endpoint's jobs wait until `until`."""

    model_config = ConfigDict(hide_input_in_errors=True, extra="forbid", frozen=True)

    endpoint: str = Field(min_length=1, max_length=300)
    until: AwareDatetime
    reason: ParkReason


class ParkedEndpoints(CompactedView[str, ParkedEndpoint]):
    """Every endpoint some worker parked, kept current from the compacted topic."""

    what = "parked endpoint"

    def __init__(self, settings: KernelSettings) -> None:
        super().__init__(settings, Topics(settings.topic_prefix).parked_endpoints)

    def decode_key(self, key: bytes) -> str | None:
        return key.decode(errors="replace")

    def decode_value(self, value: bytes) -> ParkedEndpoint:
        return ParkedEndpoint.model_validate_json(value)

    def parked(self, now: datetime) -> dict[str, datetime]:
        """Endpoints parked at `now`, each with when its park ends."""
        return park_ends(self.snapshot(), now)


def park_ends(parks: Iterable[ParkedEndpoint], now: datetime) -> dict[str, datetime]:
    """When each park going on at `now` ends, by endpoint (ignoring any beyond MAX_PARK_S)."""
    latest = now + timedelta(seconds=MAX_PARK_S)
    return {p.endpoint: p.until for p in parks if now < p.until <= latest}
