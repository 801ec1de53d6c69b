"""Every API key, kept current from the compacted api-keys topic; looked up by hash."""

from __future__ import annotations

from disparo.access import ApiKey, Permission, allows, hash_key, looks_like_key
from disparo.compacted_view import CompactedView
from disparo.settings import KernelSettings
from disparo.topics import Topics


class KeysView(CompactedView[str, ApiKey]):
    """Keys by id, and an index from hash to key for sign-in."""

    what = "api key"

    def __init__(self, settings: KernelSettings) -> None:
        super().__init__(settings, Topics(settings.topic_prefix).api_keys)
        self._by_hash: dict[str, ApiKey] = {}

    def decode_key(self, key: bytes) -> str | None:
        return key.decode(errors="replace")

    def decode_value(self, value: bytes) -> ApiKey:
        return ApiKey.model_validate_json(value)

    def changed(self, key: str, old: ApiKey | None, new: ApiKey | None) -> None:
        if old is not None:
            self._by_hash.pop(old.hash, None)
        if new is not None:
            self._by_hash[new.hash] = new

    def is_platform_admin(self, authorization: str | None) -> bool:
        """Whether an Authorization header presents an active platform admin key."""
        scheme, _, token = (authorization or "").partition(" ")
        key = self.holder(token.strip()) if scheme.lower() == "bearer" else None
        return (
            key is not None
            and key.revoked_at is None
            and key.account_id is None
            and allows(key.role, Permission.MANAGE)
        )

    def holder(self, presented: str) -> ApiKey | None:
        """The key record a presented key belongs to (revoked ones included), or None."""
        if not looks_like_key(presented):
            return None
        digest = hash_key(presented)
        with self._changed:
            return self._by_hash.get(digest)
