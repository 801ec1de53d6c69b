"""The delivery package's exception hierarchy."""

from disparo.errors import DisparoError


class DeliveryError(DisparoError):
    """Root of the errors the delivery worker raises."""


class OutcomeNotRecorded(DeliveryError):
    """An attempt's outcome could not be written to the outcomes topic; offsets stay put."""


class WorkerFailed(DeliveryError):
    """The worker stopped on a fatal error; the process exits non-zero."""
