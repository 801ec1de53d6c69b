"""An in-memory view of every rule, kept current by tailing the compacted rules topic."""

from __future__ import annotations

from disparo.compacted_view import CompactedView
from disparo.schemas import Rule
from disparo.settings import KernelSettings
from disparo.topics import Topics


class RulesView(CompactedView[int, Rule]):
    """Every rule by id, from the rules topic."""

    what = "rule"

    def __init__(self, settings: KernelSettings) -> None:
        super().__init__(settings, Topics(settings.topic_prefix).rules)

    def decode_key(self, key: bytes) -> int | None:
        text = key.decode(errors="replace")
        return int(text) if text.isdigit() else None

    def decode_value(self, value: bytes) -> Rule:
        return Rule.model_validate_json(value)
