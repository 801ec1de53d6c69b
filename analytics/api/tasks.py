"""Bulk tasks (backfill, bulk resend, resend-latest): `GET /api/v1/tasks/{id}`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path

from analytics.api.deps import Reader, Svc
from analytics.api.routing import api_router

router = api_router(tags=["tasks"])


@router.get("/api/v1/tasks/{task_id}")
def get_task(task_id: Annotated[str, Path(max_length=40)], key: Reader, svc: Svc) -> dict[str, Any]:
    """A bulk task's state and progress, and its result once done (kept an hour)."""
    return svc.tasks.get(task_id, key).public()
