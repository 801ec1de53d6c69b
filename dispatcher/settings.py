"""Settings of the dispatcher (faust) service."""

from pydantic import Field

from disparo.settings import KernelSettings


class DispatcherSettings(KernelSettings):
    """DISPARO_* settings the dispatcher reads."""

    dispatcher_group: str = Field("disparo-dispatcher", description="faust app id / consumer group")
    dispatcher_port: int = Field(8081, ge=0, le=65535, description="port of /metrics and /healthz")
    dispatcher_data_dir: str = Field("", description="faust data dir; default under DISPARO_HOME")
