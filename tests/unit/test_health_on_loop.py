import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import APIRouter
from fastapi.testclient import TestClient

from analytics.api.app import create_app
from tests.factories import bare_services

POOL_THREADS = 40  # anyio's default thread limiter: what sync routes and dependencies share


def test_healthz_answers_while_every_pool_thread_is_blocked() -> None:
    release = threading.Event()
    entered = threading.Semaphore(0)
    blocking = APIRouter()

    @blocking.get("/blocked")
    def blocked() -> dict[str, bool]:  # a sync route: runs on a pool thread
        entered.release()
        return {"released": release.wait(60)}

    svc: Any = bare_services()
    svc.problem = lambda: None
    client = TestClient(create_app(svc, [blocking]), base_url="http://127.0.0.1")
    with client, ThreadPoolExecutor(POOL_THREADS) as pool:
        waiting = [pool.submit(client.get, "/blocked") for _ in range(POOL_THREADS)]
        for _ in range(POOL_THREADS):
            assert entered.acquire(timeout=30)  # every pool thread is now held
        health = client.get("/healthz")  # would queue behind them if it needed a pool thread
        release.set()
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        assert all(f.result().json() == {"released": True} for f in waiting)
