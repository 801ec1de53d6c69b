"""The HTTP edge without a broker: keys checked before bodies, JSON parsed off the loop."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import Body, FastAPI
from fastapi.testclient import TestClient

from analytics.api import routing
from analytics.api.access import KeyFirst, presented_key
from disparo.access import new_key, revoked


class Keys:
    """A keys view holding the given records."""

    def __init__(self, *records: Any) -> None:
        self.by_key = dict(records)

    def holder(self, presented: str) -> Any:
        return self.by_key.get(presented)


def test_a_presented_key_is_the_active_key_or_why_not() -> None:
    secret, key = new_key("ops", "viewer")
    gone_secret, gone = new_key("old", "viewer")
    keys = Keys((secret, key), (gone_secret, revoked(gone)))
    assert presented_key(keys, f"Bearer {secret}") == key  # type: ignore[arg-type]
    assert "no API key" in str(presented_key(keys, None))  # type: ignore[arg-type]
    assert "must be `Bearer" in str(presented_key(keys, "Basic abc"))  # type: ignore[arg-type]
    assert "unknown API key" in str(presented_key(keys, "Bearer dsp_nope"))  # type: ignore[arg-type]
    assert "was revoked" in str(presented_key(keys, f"Bearer {gone_secret}"))  # type: ignore[arg-type]


def test_an_api_request_without_a_key_never_reaches_the_app_or_its_body() -> None:
    app = FastAPI()
    reached: list[str] = []

    @app.post("/api/v1/thing")
    def thing(body: dict[str, Any]) -> dict[str, str]:
        reached.append("api")
        return {}

    @app.get("/healthz")
    def health() -> dict[str, str]:
        reached.append("health")
        return {}

    secret, key = new_key("ops", "admin")
    app.add_middleware(KeyFirst, keys=Keys((secret, key)))
    client = TestClient(app)
    refused = client.post("/api/v1/thing", json={"x": 1})
    assert (refused.status_code, refused.headers["www-authenticate"]) == (401, "Bearer")
    assert "no API key" in refused.json()["error"]
    assert client.get("/healthz").status_code == 200  # outside /api/: no key needed
    assert client.post("/api/v1/thing", json={}, headers={"authorization": f"Bearer {secret}"})
    assert reached == ["health", "api"]


def test_json_bodies_are_parsed_on_a_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed_on: list[str] = []
    real = routing.json.loads

    def loads(text: Any) -> Any:
        parsed_on.append(threading.current_thread().name)
        return real(text)

    monkeypatch.setattr(routing, "json", SimpleNamespace(loads=loads))
    router = routing.api_router()

    @router.post("/echo")
    async def echo(body: dict[str, Any] = Body()) -> dict[str, Any]:  # noqa: B008
        return {"got": body, "loop": threading.current_thread().name}

    app = FastAPI()
    app.include_router(router)
    answer = TestClient(app).post("/echo", json={"order_ids": ["A", "B"]}).json()
    assert answer["got"] == {"order_ids": ["A", "B"]}
    assert len(parsed_on) == 1
    assert parsed_on[0] != answer["loop"]  # not the event loop's thread


def test_domain_errors_map_to_the_statuses_the_api_promises() -> None:
    from analytics.api.errors import http_status_of
    from analytics.errors import (
        Forbidden,
        KafkaRefused,
        QueryTimeout,
        RateLimited,
        StoreError,
        TooLarge,
    )

    cases = [
        (QueryTimeout("past 30 s"), 504),  # a kind of StoreError, answered apart
        (StoreError("down"), 503),
        (Forbidden("platform only"), 403),
        (TooLarge("1001 events"), 413),
        (RateLimited("over", 3), 429),
        (KafkaRefused("down"), 503),
    ]
    assert [http_status_of(e) for e, _ in cases] == [status for _, status in cases]


def test_a_store_failure_answers_503_without_the_store_s_own_words() -> None:
    from analytics.api.app import create_app
    from analytics.errors import StoreError
    from tests.factories import bare_services

    class Down:
        database = "disparo"

        def select(self, *_: Any) -> Any:
            raise StoreError("ClickHouse server db-7.internal:9000: password for user ops")

    svc = bare_services()
    svc.store = Down()
    svc.ready = lambda: True
    client = TestClient(create_app(svc), base_url="http://127.0.0.1")
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["clickhouse"] == "unavailable; see the analytics log"
    assert "db-7" not in ready.text
    router = routing.api_router()

    @router.get("/boom")
    def boom() -> None:
        raise StoreError("ClickHouse server db-7.internal:9000: broken pipe")

    app = create_app(svc, [])
    app.include_router(router)
    answer = TestClient(app, base_url="http://127.0.0.1").get("/boom")
    assert answer.status_code == 503
    assert "db-7" not in answer.text
    assert "history store unavailable" in answer.json()["error"]
