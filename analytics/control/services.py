"""What the control plane's operations work with, composed once by the analytics service."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from analytics.control.account_book import AccountBook
from analytics.control.idempotency import Idempotency
from analytics.control.ingest import Intake
from analytics.control.job_queue import JobQueue
from analytics.control.keys import KeyRing
from analytics.control.live_feed import LiveFeed
from analytics.control.outcome_watch import OutcomeWatch
from analytics.control.rate_limit import RateLimiter
from analytics.control.rule_book import RuleBook
from analytics.control.tasks import Tasks
from analytics.history.store import Store
from disparo.accounts_view import AccountsView
from disparo.rules_view import RulesView
from disparo.topics import Topics


@dataclass
class Services:
    """The history store, the books every write goes through, the views and the limits."""

    store: Store
    rule_book: RuleBook
    account_book: AccountBook
    key_ring: KeyRing
    jobs: JobQueue
    intake: Intake
    topics: Topics
    ready: Callable[[], bool] | None = None
    problem: Callable[[], str | None] | None = None  # why the process should be restarted
    secret_overlap: timedelta = timedelta(hours=24)  # both secrets sign after a rotation
    limiter: RateLimiter = field(default_factory=RateLimiter)  # per-account limits
    outcomes: OutcomeWatch | None = None  # answers test webhooks
    live: LiveFeed | None = None  # new attempt rows for the live history
    tasks: Tasks = field(default_factory=Tasks)  # bulk operations in the background

    @functools.cached_property
    def idempotency(self) -> Idempotency:
        """First answers of POSTs sent with an `Idempotency-Key`."""
        return Idempotency(self.store)

    @property
    def rules(self) -> RulesView:
        return self.rule_book.view

    @property
    def accounts(self) -> AccountsView:
        return self.account_book.view
