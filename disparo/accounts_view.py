"""Every described account, kept current from the compacted accounts topic."""

from __future__ import annotations

from disparo.accounts import Account, decode_account
from disparo.compacted_view import CompactedView
from disparo.secret_box import SecretBox
from disparo.settings import KernelSettings
from disparo.topics import Topics


class AccountsView(CompactedView[str, Account]):
    """Accounts by id; an account never described reads as `Account.implicit`."""

    what = "account"

    def __init__(self, settings: KernelSettings, box: SecretBox) -> None:
        super().__init__(settings, Topics(settings.topic_prefix).accounts)
        self.box = box

    def decode_key(self, key: bytes) -> str | None:
        return key.decode(errors="replace")

    def decode_value(self, value: bytes) -> Account:
        return decode_account(value, self.box)

    def of(self, account_id: str) -> Account:
        """The account as described, or its implicit form."""
        return self.get(account_id) or Account.implicit(account_id)
