"""Retry tiers: the delay schedule that names the `retry.<tier>` topics."""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DEFAULT_SCHEDULE = "5s,1m,10m,1h,6h"


@dataclass(frozen=True)
class Tier:
    """One delay tier: its topic suffix (e.g. `1m`) and its delay in seconds."""

    name: str
    delay_s: float


def parse_schedule(text: str) -> tuple[Tier, ...]:
    """Tiers from `5s,1m,10m,1h,6h`; raises ValueError naming the bad part."""
    tiers = []
    for part in (p.strip() for p in text.split(",")):
        match = re.fullmatch(r"(\d+)([smhd])", part)
        if match is None:
            raise ValueError(f"{part!r} is not a delay like 5s, 1m, 10m, 1h or 1d")
        tiers.append(Tier(part, int(match[1]) * _UNITS[match[2]]))
    if len({t.name for t in tiers}) != len(tiers):
        raise ValueError("each retry tier must appear once")
    return tuple(tiers)
