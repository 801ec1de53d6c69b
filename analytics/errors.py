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
