"""Roles, keys and the route table: who may do what, without a broker."""

from __future__ import annotations

import pytest
from fastapi import APIRouter

from analytics.api.app import ROUTERS, access_table, create_app
from disparo.access import (
    ROLES,
    Permission,
    allows,
    hash_key,
    looks_like_key,
    new_key,
    record_for,
    revoked,
    roles_for,
)
from tests.factories import bare_services


def test_roles_grant_what_the_design_says() -> None:
    granted = {role: sorted(p.value for p in Permission if allows(role, p)) for role in ROLES}
    assert granted == {
        "publisher": ["ingest", "signed_in"],
        "viewer": ["read", "signed_in"],
        "operator": ["read", "resend", "signed_in"],
        "admin": ["ingest", "manage", "read", "resend", "signed_in"],
    }
    assert roles_for(Permission.INGEST) == ["publisher", "admin"]
    assert roles_for(Permission.MANAGE) == ["admin"]


def test_a_key_is_stored_only_as_its_hash_with_a_stable_id() -> None:
    key, record = new_key("ops", "operator")
    assert key.startswith("dsp_")
    assert len(key) >= 4 + 43
    assert record.hash == hash_key(key)
    assert key not in record.model_dump_json()
    assert "hash" not in record.public()
    assert record_for(key, "ops", "operator").id == record.id
    assert new_key("ops", "operator")[1].id != record.id
    gone = revoked(record)
    assert gone.revoked_at is not None
    assert not gone.active
    assert record.active


@pytest.mark.parametrize(
    ("text", "ours"),
    [
        ("dsp_" + "a" * 43, True),
        ("dsp_a b", False),
        ("Bearer dsp_x", False),
        ("dsp_" + "a" * 300, False),
    ],
)
def test_only_key_shaped_tokens_are_looked_up(text: str, ours: bool) -> None:
    assert looks_like_key(text) is ours


def test_every_api_route_declares_a_permission() -> None:
    table = access_table(ROUTERS)
    assert [(m, p) for m, p, permission in table if permission is None] == []
    assert ("POST", "/api/v1/events", Permission.INGEST) in table
    assert ("GET", "/api/v1/audit", Permission.READ) in table


def test_an_api_route_without_a_permission_stops_the_app_from_starting() -> None:
    careless = APIRouter()

    @careless.get("/api/v1/open")
    def open_route() -> dict[str, str]:
        return {}

    svc = bare_services()
    with pytest.raises(RuntimeError, match="GET /api/v1/open declares no permission"):
        create_app(svc, [careless])
