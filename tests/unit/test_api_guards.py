from typing import Annotated, Any

from fastapi import Body, FastAPI
from fastapi.testclient import TestClient

from analytics.api.csv_export import csv_safe
from analytics.api.guards import BodyLimit, HostAllowlist, SecurityHeaders, body_limit, host_allowed


def _app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(HostAllowlist, allowed=("127.0.0.1", "localhost", "*.example.com"))

    @app.post("/api/v1/events")
    def events(body: Annotated[Any, Body()]) -> dict[str, int]:
        return {"n": len(body)}

    @app.post("/api/v1/resend")
    def resend(body: Annotated[Any, Body()]) -> dict[str, int]:
        return {"n": len(body)}

    @app.get("/healthz")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def test_route_limits() -> None:
    assert body_limit("POST", "/api/v1/events") == 10 * 1024 * 1024
    assert body_limit("PUT", "/api/v1/rules/7") == 64 * 1024
    assert body_limit("POST", "/api/v1/resend/bulk") == 16 * 1024


def test_a_body_at_its_limit_passes_and_one_byte_more_is_413_naming_the_limit() -> None:
    client = TestClient(_app(), base_url="http://127.0.0.1")
    limit = 16 * 1024
    at_limit = b'"' + b"a" * (limit - 2) + b'"'
    assert client.post("/api/v1/resend", content=at_limit).status_code == 200
    over = client.post("/api/v1/resend", content=at_limit + b" ")
    assert over.status_code == 413
    assert "16 KiB" in over.json()["error"]


def test_a_streamed_body_without_length_is_cut_at_the_limit() -> None:
    client = TestClient(_app(), base_url="http://127.0.0.1")

    def chunks() -> Any:
        for _ in range(40):
            yield b"a" * 1024

    answer = client.post("/api/v1/resend", content=chunks())
    assert answer.status_code == 413
    assert "16 KiB" in answer.json()["error"]


def test_unknown_hosts_get_400_but_probes_answer_any_host() -> None:
    client = TestClient(_app(), base_url="http://rebind.attacker.test")
    refused = client.post("/api/v1/events", json=[1])
    assert refused.status_code == 400
    assert "DISPARO_API_ALLOWED_HOSTS" in refused.json()["error"]
    assert client.get("/healthz").status_code == 200
    assert host_allowed("localhost:8080", ("localhost",))
    assert host_allowed("api.example.com", ("*.example.com",))
    assert not host_allowed("example.com.evil.test", ("*.example.com",))


def test_every_answer_carries_the_security_headers() -> None:
    answer = TestClient(_app(), base_url="http://localhost").get("/healthz")
    assert answer.headers["content-security-policy"].startswith("default-src 'self'")
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"


def test_csv_cells_a_spreadsheet_would_evaluate_are_neutralised() -> None:
    row = {"a": "=HYPERLINK(1)", "b": "+1", "c": "-2", "d": "@x", "e": "\tt", "f": "\rr"}
    assert set(csv_safe(row).values()) == {"'=HYPERLINK(1)", "'+1", "'-2", "'@x", "'\tt", "'\rr"}
    assert csv_safe({"a": "ok", "n": 5}) == {"a": "ok", "n": 5}


def test_csv_cells_are_safe_for_spreadsheets_that_split_on_semicolons() -> None:
    row = {"a": 'x;=HYPERLINK("http://evil")', "b": "1;+2;-3;@4", "c": "a;b"}
    assert csv_safe(row) == {
        "a": 'x;\'=HYPERLINK("http://evil")',
        "b": "1;'+2;'-3;'@4",
        "c": "a;b",
    }


def test_interactive_docs_keep_their_scripts_but_not_framing() -> None:
    answer = TestClient(_app(), base_url="http://localhost").get("/docs")
    assert "content-security-policy" not in answer.headers
    assert answer.headers["x-frame-options"] == "DENY"
