"""Parsed rules kept beside the table's raw JSON, so each event does not re-parse them."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pydantic import ValidationError

from disparo.schemas import Rule

log = logging.getLogger(__name__)


class RuleCache:
    """Maps raw rule JSON (as stored in the table) to parsed rules, re-parsing only on change."""

    def __init__(self) -> None:
        self._parsed: dict[str, tuple[str, Rule | None]] = {}

    def rules(self, items: Iterable[tuple[str, str]]) -> list[Rule]:
        """The parsed rules of (key, raw JSON) pairs; unparseable ones are skipped and logged."""
        out = []
        seen = set()
        for key, raw in items:
            seen.add(key)
            cached = self._parsed.get(key)
            if cached is None or cached[0] != raw:
                cached = (raw, self._parse(key, raw))
                self._parsed[key] = cached
            if cached[1] is not None:
                out.append(cached[1])
        for gone in set(self._parsed) - seen:
            del self._parsed[gone]
        return out

    @staticmethod
    def _parse(key: str, raw: str) -> Rule | None:
        try:
            return Rule.model_validate_json(raw)
        except ValidationError as exc:
            log.error("rule %s in the table is invalid and ignored: %s", key, exc)
            return None
