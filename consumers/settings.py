"""Settings of the delivery worker."""

from pydantic import Field, field_validator

from disparo.settings import KernelSettings


class WorkerSettings(KernelSettings):
    """DISPARO_* settings the delivery worker reads."""

    worker_group: str = Field("disparo-delivery", description="consumer group of the workers")
    worker_port: int = Field(8082, ge=0, le=65535, description="port of /metrics and /healthz")
    worker_concurrency: int = Field(256, ge=1, le=10000, description="POSTs in flight at once")
    worker_batch: int = Field(1000, ge=1, le=50000, description="jobs taken per poll")
    excerpt_bytes: int = Field(1024, ge=0, le=65536, description="request/response bytes kept")
    # An eighth of the worker's concurrency: seven endpoints that hang leave room for the rest.
    worker_endpoint_concurrency: int = Field(
        32,
        ge=1,
        le=10000,
        description="POSTs in flight at once to one endpoint (account, host:port)",
    )
    # Two accounts' endpoints on one host fit under it: a shared gateway is not one endpoint.
    worker_host_concurrency: int = Field(
        64,
        ge=1,
        le=10000,
        description="POSTs in flight at once to one host:port, all accounts together",
    )
    # Three quarters: other accounts always find 64 slots, and one account's healthy
    # endpoints still find room beside five of its own that hang (5 x 32 + 32 = 192).
    worker_account_share: float = Field(
        0.75,
        gt=0,
        le=1,
        description="the largest share of worker_concurrency one account's POSTs may hold "
        "(1: no cap)",
    )
    breaker_failures: int = Field(
        5,
        ge=1,
        le=1000,
        description="unhealthy answers (errors, timeouts, answers slower than half the rule's "
        "timeout) within a minute, no success between, that open an endpoint's circuit",
    )
    resend_rate: float = Field(
        20.0,
        gt=0,
        le=10000,
        description="manual resends per second to one endpoint (account, host:port), per worker",
    )
    breaker_open_s: float = Field(
        30.0, gt=0, le=3600, description="seconds an open circuit waits before one probe"
    )
    # Late carrier scans come within days; each remembered (rule, order) costs a lane record
    # in the compacted order-lanes topic and about 600 bytes of the owning worker's memory.
    status_guard_days: float = Field(
        7.0,
        gt=0,
        le=30,
        description="days a status-guarded rule remembers the order status each customer "
        "holds, counted from the order's last webhook",
    )
    retried_4xx: str = Field(
        "408,429", description="4xx statuses that are retried (every other 4xx is final)"
    )

    @field_validator("retried_4xx")
    @classmethod
    def _statuses(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            if not (part.isdigit() and 400 <= int(part) <= 499):
                raise ValueError(f"{part!r} is not a 4xx status; use e.g. 408,429")
        return value

    @property
    def retried_4xx_statuses(self) -> frozenset[int]:
        """The parsed set of retried 4xx statuses."""
        return frozenset(int(p) for p in self.retried_4xx.split(",") if p.strip())
