"""Trying a rule: `/rules/dry-run` (before saving), `/rules/{id}/backfill`, `/rules/{id}/test`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body

from analytics.api.deps import INLINE_WAIT_S, Operator, Reader, Svc
from analytics.api.routing import api_router
from analytics.control import resends, rule_trials
from analytics.control.resends import Period
from analytics.control.rule_trials import DryRun
from analytics.control.tasks import answer
from disparo.schemas import OrderEvent

router = api_router(tags=["rules"])


@router.post("/api/v1/rules/dry-run")
def dry_run(body: DryRun, key: Reader, svc: Svc) -> dict[str, Any]:
    """Events and orders of a period a rule (not saved) would match, with a sample of 20."""
    return rule_trials.dry_run(svc, body, key)


@router.post("/api/v1/rules/{rule_id}/backfill", status_code=202)
def backfill(
    rule_id: int,
    actor: Operator,
    svc: Svc,
    body: Annotated[Period, Body()] = Period(),  # noqa: B008 (an immutable default)
) -> dict[str, Any]:
    """Dispatch the stored events of a period the rule matches and was not sent yet."""
    return answer(resends.backfill(svc, rule_id, body, actor), INLINE_WAIT_S)


@router.post("/api/v1/rules/{rule_id}/test")
async def send_test(
    rule_id: int,
    actor: Operator,
    svc: Svc,
    event: Annotated[OrderEvent | None, Body()] = None,
) -> dict[str, Any]:
    """Send one signed webhook now and answer with its result (recorded as disparo.test)."""
    return await rule_trials.send_test(svc, rule_id, event, actor)
