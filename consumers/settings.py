"""Settings of the delivery worker."""

from pydantic import Field

from disparo.settings import KernelSettings


class WorkerSettings(KernelSettings):
    """DISPARO_* settings the delivery worker reads."""

    worker_group: str = Field("disparo-delivery", description="consumer group of the workers")
    worker_port: int = Field(8082, ge=0, le=65535, description="port of /metrics and /healthz")
    worker_concurrency: int = Field(256, ge=1, le=10000, description="POSTs in flight at once")
    worker_batch: int = Field(1000, ge=1, le=50000, description="jobs taken per poll")
    allow_private_targets: bool = Field(
        False, description="allow webhook URLs on loopback/private addresses (local stack: true)"
    )
    excerpt_bytes: int = Field(1024, ge=0, le=65536, description="request/response bytes kept")
