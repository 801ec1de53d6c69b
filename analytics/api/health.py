"""Health, readiness and metrics of the analytics service."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from analytics.api.deps import Admin, Svc
from analytics.errors import Forbidden, StoreError
from disparo.ops_http import HEALTH_PATH, METRICS_PATH, READY_PATH, STACKS_NEED, STACKS_PATH
from disparo.stacks import thread_stacks

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


# Answered on the event loop, never queued behind store or Kafka calls in the thread pool.
@router.get(HEALTH_PATH)
async def healthz(svc: Svc, response: Response) -> dict[str, str]:
    """The process is alive and its outcomes sink is turning (503 asks for a restart)."""
    problem = svc.problem() if svc.problem is not None else None
    if problem:
        response.status_code = 503
        return {"status": "stuck", "problem": problem}
    return {"status": "ok"}


@router.get(READY_PATH)
def readyz(svc: Svc, response: Response) -> dict[str, object]:
    """Kafka and ClickHouse both answer."""
    checks: dict[str, object] = {}
    try:
        svc.store.select("SELECT 1 AS one")
        checks["clickhouse"] = "ok"
    except StoreError as exc:  # the cause to the log, not to whoever asks
        log.warning("readiness: ClickHouse does not answer: %s", exc)
        checks["clickhouse"] = "unavailable; see the analytics log"
    checks["kafka"] = "ok" if svc.ready is None or svc.ready() else "not consuming yet"
    ready = all(v == "ok" for v in checks.values())
    response.status_code = 200 if ready else 503
    return {"ready": ready, **checks}


@router.get(METRICS_PATH)
async def metrics() -> Response:
    """Prometheus metrics of this process."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get(STACKS_PATH, response_class=PlainTextResponse)
def stacks(key: Admin) -> str:
    """Every thread's stack, to see where a stuck service waits (no signal: chdb owns those);
    a platform admin's key only: stacks show every account's work."""
    if key.account_id is not None:
        raise Forbidden(STACKS_NEED)
    return thread_stacks()
