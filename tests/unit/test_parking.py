"""Parked endpoints: the worker's notes, how long a park holds, and the dispatcher's detour."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from consumers.park_notes import ParkNotes
from disparo.parking import (
    MAX_PARK_S,
    ParkedEndpoint,
    back_at,
    endpoint_key,
    park_ends,
    park_tier,
)
from disparo.retry_tiers import parse_schedule
from disparo.schemas import DispatchJob, now_utc
from disparo.topics import Topics
from dispatcher.detours import Detours
from tests.factories import event, rule

TIERS = parse_schedule("5s,1m,10m")


def test_a_deferral_parks_the_endpoint_once_until_half_the_park_has_passed() -> None:
    start = now_utc()
    now = [start]
    notes = ParkNotes(clock=lambda: now[0])
    first = notes.deferred("hooks.example.com:443", 30, "circuit_open")
    assert first is not None
    assert first.endpoint == "hooks.example.com:443"
    assert first.value is not None
    park = ParkedEndpoint.model_validate_json(first.value)
    assert (park.until, park.reason) == (start + timedelta(seconds=30), "circuit_open")
    now[0] = start + timedelta(seconds=14)
    assert notes.deferred("hooks.example.com:443", 30, "circuit_open") is None  # said lately
    now[0] = start + timedelta(seconds=16)  # less than half of the park is left
    again = notes.deferred("hooks.example.com:443", 30, "endpoint_busy")
    assert again is not None
    assert again.value is not None
    assert ParkedEndpoint.model_validate_json(again.value).until == now[0] + timedelta(seconds=30)


def test_a_healthy_answer_unparks_only_what_this_worker_parked_and_only_once() -> None:
    notes = ParkNotes()
    assert notes.answered("a.example:80") is None  # never parked here: nothing to write
    notes.deferred("a.example:80", 5, "endpoint_busy")
    tombstone = notes.answered("a.example:80")
    assert tombstone is not None
    assert (tombstone.endpoint, tombstone.value) == ("a.example:80", None)
    assert notes.answered("a.example:80") is None


def test_parks_over_and_parks_longer_than_any_worker_writes_are_ignored() -> None:
    now = now_utc()
    parks = [
        ParkedEndpoint(endpoint="over:80", until=now - timedelta(seconds=1), reason="circuit_open"),
        ParkedEndpoint(endpoint="on:80", until=now + timedelta(seconds=20), reason="circuit_open"),
        ParkedEndpoint(endpoint="far:80", until=now + timedelta(days=30), reason="endpoint_busy"),
    ]
    edge = now + timedelta(seconds=MAX_PARK_S)
    parks.append(ParkedEndpoint(endpoint="edge:80", until=edge, reason="circuit_open"))
    assert park_ends(parks, now) == {"on:80": now + timedelta(seconds=20), "edge:80": edge}


@pytest.mark.parametrize(
    ("wait_s", "tier"), [(0.5, "5s"), (5, "5s"), (6, "1m"), (600, "10m"), (3600, "10m")]
)
def test_a_park_goes_to_the_first_tier_that_waits_long_enough(wait_s: float, tier: str) -> None:
    assert park_tier(TIERS, wait_s).name == tier


def test_a_parked_job_is_due_at_the_end_of_its_park_and_at_most_a_fifth_later() -> None:
    now = now_utc()
    assert back_at(now, 10, draw=0.0) == now + timedelta(seconds=10)
    assert back_at(now, 10, draw=1.0) == now + timedelta(seconds=12)


def _job_and_detour(
    parked: dict[str, datetime], now: datetime, **rule_fields: object
) -> tuple[DispatchJob, str, DispatchJob]:
    r = rule(id=7, url="https://Down.example/in", **rule_fields)
    job = DispatchJob.first(event(), r)
    topic, sent = Detours(Topics("p."), TIERS).destination(job, (r,), parked, now)
    return job, topic, sent


def test_a_plain_rule_s_job_for_a_parked_endpoint_goes_to_a_retry_tier_due_at_its_end() -> None:
    now = now_utc()
    until = now + timedelta(seconds=30)
    job, topic, sent = _job_and_detour(
        {endpoint_key("default", "https://down.example/x"): until}, now
    )
    assert topic == "p.retry.1m"
    assert sent.not_before is not None
    assert until <= sent.not_before <= until + timedelta(seconds=6)
    assert sent.model_copy(update={"not_before": None}) == job  # the same job, first attempt
    assert sent.attempt == 1


@pytest.mark.parametrize(
    "fields", [{"ordering": "per_order"}, {"supersede": True}, {"paused": True}]
)
def test_order_aware_and_paused_rules_jobs_always_go_the_ordinary_way(
    fields: dict[str, object],
) -> None:
    now = now_utc()
    parked = {"down.example:443": now + timedelta(seconds=30)}
    job, topic, sent = _job_and_detour(parked, now, **fields)
    assert (topic, sent) == ("p.dispatch-jobs", job)


def test_jobs_for_endpoints_not_parked_go_to_dispatch_jobs_unchanged() -> None:
    now = now_utc()
    job, topic, sent = _job_and_detour({"other.example:443": now + timedelta(seconds=30)}, now)
    assert (topic, sent) == ("p.dispatch-jobs", job)
    job, topic, sent = _job_and_detour({}, now)
    assert (topic, sent) == ("p.dispatch-jobs", job)
