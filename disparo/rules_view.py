"""An in-memory view of every rule, kept current by tailing the compacted rules topic."""

from __future__ import annotations

from disparo.compacted_view import CompactedView
from disparo.rule_codec import STRICT_KEY, decode_rule
from disparo.schemas import Rule
from disparo.secret_box import SecretBox
from disparo.settings import KernelSettings
from disparo.topics import Topics


class RulesView(CompactedView[int, Rule]):
    """Every rule by id, from the rules topic, secrets opened with the process's key."""

    what = "rule"

    def __init__(self, settings: KernelSettings, box: SecretBox) -> None:
        super().__init__(settings, Topics(settings.topic_prefix).rules)
        self.box = box
        self.strict = False

    def decode_key(self, key: bytes) -> int | None:
        text = key.decode(errors="replace")
        return int(text) if text.isdigit() else None

    def decode_value(self, value: bytes) -> Rule:
        return decode_rule(value, self.box, self.strict)

    def _apply(self, raw_key: bytes | None, value: bytes | None) -> None:
        if raw_key == STRICT_KEY:  # `disparo secrets rewrap` ran: bound sealed values only
            self.strict = value is not None
            return
        super()._apply(raw_key, value)

    def accepts(self, old: Rule, new: Rule) -> bool:
        """A rule record replaces the one before it if it is a later version, the same rule
        written again (sealed anew), or from before versions counted (version 1)."""
        return new.version > old.version or new == old or new.version == 1
