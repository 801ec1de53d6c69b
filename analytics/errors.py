"""The analytics package's exception hierarchy."""

from disparo.errors import DisparoError


class AnalyticsError(DisparoError):
    """Root of the errors the analytics service raises."""


class StoreError(AnalyticsError):
    """ClickHouse (embedded or server) refused or failed a statement."""


class SchemaRefused(StoreError):
    """The ClickHouse server cannot hold the schema (too old); retrying will not help."""


class BadQuery(AnalyticsError):
    """A history query's parameters cannot be answered; the message says how to fix them."""


class NotFound(AnalyticsError):
    """The rule, dispatch or order asked for is not there; the message says where to look."""


class InvalidField(AnalyticsError):
    """A request field is well-formed but not acceptable; answered 422 naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Conflict(AnalyticsError):
    """The request cannot be carried out in the current state (e.g. a taken id)."""


class StaleVersion(Conflict):
    """A write was based on a version of a rule that is no longer its current one (409)."""

    def __init__(self, rule_id: int, sent: int, current: int) -> None:
        super().__init__(
            f"rule {rule_id} is at version {current}, not {sent}: it changed since it was "
            "read; reload it and apply the change again"
        )
        self.current_version = current


class TooBroad(AnalyticsError):
    """The request would touch more than its limit; the message says how to narrow it."""


class KafkaRefused(AnalyticsError):
    """Kafka did not take a write the request needs (a rule change, a resend)."""


class RateLimited(AnalyticsError):
    """An account's limit is used up for now; answered 429 with `Retry-After`."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, retry_after_s)


class NoAnswer(AnalyticsError):
    """Work was queued but no answer came in time (a test webhook with no worker running)."""


class Forbidden(AnalyticsError):
    """The key may not do this, whatever its role (e.g. an account key setting limits)."""


class QueryTimeout(StoreError):
    """A history query ran past its time limit; the message names the limit."""


class TooLarge(AnalyticsError):
    """A request carries more than one request may (events, bytes); the message gives the limit."""
