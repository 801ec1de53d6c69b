"""An account's order lifecycle and the status guard's pure decisions (design: "Order
lifecycle and status guard").

The guard remembers, per (rule, order), the status the customer holds: the highest-ranked
status delivered (2xx) since the last allowed step back. A dispatch whose status ranks
below it, and is not an allowed step back from it, is `regressed`. Statuses the lifecycle
does not name pass and change nothing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_STATUSES = 50
MAX_STEPS_BACK = 100
StatusGuard = Literal["off", "forward_only"]
Status = str


class Lifecycle(BaseModel):
    """Ranked order statuses (lowest first) and the steps back that are allowed."""

    model_config = ConfigDict(hide_input_in_errors=True, extra="forbid", frozen=True)

    statuses: tuple[Status, ...] = Field(min_length=1, max_length=MAX_STATUSES)
    allowed_back: tuple[tuple[Status, Status], ...] = Field((), max_length=MAX_STEPS_BACK)

    @model_validator(mode="after")
    def _consistent(self) -> Lifecycle:
        for status in self.statuses:
            if not 1 <= len(status) <= 200 or status != status.strip():
                raise ValueError(f"status {status[:40]!r} must be 1-200 characters, not padded")
        if len(set(self.statuses)) != len(self.statuses):
            raise ValueError("a status is named twice in 'statuses'")
        rank = self.ranks()
        for back, to in self.allowed_back:
            for name in (back, to):
                if name not in rank:
                    raise ValueError(f"allowed_back names {name[:40]!r}, which is not in statuses")
            if rank[to] >= rank[back]:
                raise ValueError(
                    f"allowed_back [{back!r}, {to!r}] is not a step back: "
                    f"{to!r} ranks above {back!r} already"
                )
        return self

    def ranks(self) -> dict[str, int]:
        """Each status's rank, lowest first."""
        return _ranks(self.statuses)


@functools.lru_cache(maxsize=1024)
def _ranks(statuses: tuple[str, ...]) -> dict[str, int]:
    return {status: i for i, status in enumerate(statuses)}


@dataclass(frozen=True)
class Check:
    """The guard's answer on one dispatch: sent (maybe unranked), or regressed after `after`."""

    regressed: bool
    unranked: bool = False
    after: str | None = None  # the status the customer holds, when regressed


_SENT = Check(regressed=False)
_UNRANKED = Check(regressed=False, unranked=True)


def check(lifecycle: Lifecycle, status: str | None, held: str | None) -> Check:
    """May a dispatch of `status` go to a customer who holds `held` (None: nothing yet)?"""
    ranks = lifecycle.ranks()
    if status is None or status not in ranks:
        return _UNRANKED
    if held is None or held not in ranks or ranks[status] >= ranks[held]:
        return _SENT
    if (held, status) in lifecycle.allowed_back:
        return _SENT
    return Check(regressed=True, after=held)


def holds_after(lifecycle: Lifecycle, held: str | None, delivered: str | None) -> str | None:
    """What the customer holds once `delivered` got a 2xx on top of `held`."""
    ranks = lifecycle.ranks()
    if delivered is None or delivered not in ranks:
        return held  # an unranked status says nothing about the order's progress
    if held is None or held not in ranks or ranks[delivered] >= ranks[held]:
        return delivered
    if (held, delivered) in lifecycle.allowed_back:
        return delivered  # an allowed step back: the order goes on from there
    return held
