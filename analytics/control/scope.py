"""Which account a request may see: an account key its own, a platform key any (or all)."""

from __future__ import annotations

from analytics.errors import NotFound
from disparo.access import ApiKey


def account_scope(key: ApiKey, asked: str | None) -> str | None:
    """The account a request is limited to, or None for all (a platform key asking for all).

    An account key asking for another account gets 404, as for any object of another
    account: nothing tells it that the account exists.
    """
    if key.account_id is None:
        return asked
    if asked is not None and asked != key.account_id:
        raise NotFound(f"no account {asked!r}")
    return key.account_id


def visible(key: ApiKey, account_id: str | None) -> bool:
    """Whether an object of `account_id` (None: a platform object) exists for this key."""
    return key.account_id is None or key.account_id == account_id
