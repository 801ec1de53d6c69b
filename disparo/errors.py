"""The exception hierarchy of the shared kernel; stage packages derive their own roots."""


class DisparoError(Exception):
    """Root of every error disparo raises on purpose."""


class SettingsError(DisparoError):
    """A DISPARO_* environment variable has a value that cannot be used."""


class KafkaUnavailable(DisparoError):
    """The Kafka cluster could not be reached or refused an operation."""


class InvalidMessage(DisparoError):
    """A message on a topic does not match its contract; carries a readable reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KafkaCredentialsRefused(KafkaUnavailable):
    """The brokers refused this process's SASL login: retrying will not help."""
