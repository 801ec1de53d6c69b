"""Objects the routers share, held on the app's state by the service."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from fastapi import Request
from kafka import KafkaProducer

from analytics.store import Store
from disparo.accounts_view import AccountsView
from disparo.keys_view import KeysView
from disparo.rate_limit import RateLimiter
from disparo.rules_view import RulesView
from disparo.secret_box import SecretBox
from disparo.settings import KernelSettings
from disparo.targets import AllowEntry
from disparo.topics import Topics


@dataclass
class Services:
    """The store, the rules, keys and accounts views and the producer behind the API."""

    store: Store
    rules: RulesView
    keys: KeysView
    accounts: AccountsView
    box: SecretBox  # seals rule secrets before they reach the rules topic
    producer: KafkaProducer
    topics: Topics
    ready: Callable[[], bool] | None = None
    problem: Callable[[], str | None] | None = None  # why the process should be restarted
    allowlist: tuple[AllowEntry, ...] = ()  # non-public targets a rule may name
    secret_overlap: timedelta = timedelta(hours=24)  # both secrets sign after a rotation
    limiter: RateLimiter = field(default_factory=RateLimiter)  # per-account limits
    kafka: KernelSettings | None = None  # for readers of a topic (a test webhook's outcome)


async def services(request: Request) -> Services:
    """The app's services; async so that it is read on the event loop, not the thread pool."""
    found: Services = request.app.state.services
    return found
