"""Settings of the analytics service (outcomes sink + management API)."""

from datetime import timedelta
from pathlib import Path

from pydantic import Field, field_validator

from disparo.retry_tiers import parse_schedule
from disparo.settings import KernelSettings


class AnalyticsSettings(KernelSettings):
    """DISPARO_* settings the analytics service reads."""

    clickhouse_url: str = Field(
        "", description="clickhouse://host:9000/db for a server; empty = chdb under DISPARO_HOME"
    )
    api_host: str = Field("127.0.0.1", description="address the management API listens on")
    api_port: int = Field(8080, ge=1, le=65535, description="port of the management API and page")
    api_allowed_hosts: str = Field(
        "127.0.0.1,localhost",
        description="Host header values the API answers (DNS rebinding guard), comma "
        "separated; '*.example.com' wildcards, '*' for any",
    )
    sink_group: str = Field("disparo-analytics-sink", description="consumer group of the sink")
    event_sink_group: str = Field(
        "disparo-analytics-events", description="consumer group of the events sink"
    )
    duties_group: str = Field(
        "disparo-analytics-duties",
        description="consumer group whose one member runs the background duties",
    )
    query_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="time limit of each history read (API, page, duties); past it, 504",
    )
    sink_batch: int = Field(5000, ge=1, le=100000, description="rows per ClickHouse insert")
    sink_linger_ms: int = Field(250, ge=0, le=60000, description="longest wait to fill a batch")
    sink_stall_s: float = Field(
        120.0, gt=0, le=3600, description="/healthz fails when the sink loop is stuck this long"
    )

    deactivate_after: str = Field(
        "5d",
        description="deactivate a rule whose endpoint failed continuously this long; 0 = never",
    )
    warden_interval_s: float = Field(60.0, gt=0, le=3600, description="how often rules are checked")
    failing_window: str = Field(
        "15m",
        description="a rule whose failure ratio stays above its account's threshold this long "
        "is reported failing (rule.failing), an account whose dispatches breach its slo this "
        "long is reported breached (sla.breached); 0 = never",
    )
    health_interval_s: float = Field(
        60.0, gt=0, le=3600, description="how often rules' failure ratios are judged"
    )
    secret_overlap: str = Field(
        "24h", description="after a secret rotation, how long webhooks carry both signatures"
    )

    @field_validator("deactivate_after", "secret_overlap", "failing_window")
    @classmethod
    def _duration(cls, value: str) -> str:
        if value != "0":
            parse_schedule(value)
        return value

    @property
    def secret_overlap_delta(self) -> timedelta:
        """How long the previous secret still signs after a rotation."""
        if self.secret_overlap == "0":
            return timedelta(0)
        return timedelta(seconds=parse_schedule(self.secret_overlap)[0].delay_s)

    @property
    def allowed_hosts(self) -> list[str]:
        """The parsed Host allow-list."""
        return [h.strip() for h in self.api_allowed_hosts.split(",") if h.strip()]

    @property
    def deactivate_after_delta(self) -> timedelta | None:
        """The failing streak that deactivates a rule, or None when disabled."""
        if self.deactivate_after == "0":
            return None
        return timedelta(seconds=parse_schedule(self.deactivate_after)[0].delay_s)

    @property
    def failing_window_delta(self) -> timedelta | None:
        """How long a rule must fail to be reported failing, or None when disabled."""
        if self.failing_window == "0":
            return None
        return timedelta(seconds=parse_schedule(self.failing_window)[0].delay_s)

    @field_validator("clickhouse_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value and not value.startswith(("clickhouse://", "clickhouses://", "chdb://")):
            raise ValueError("use clickhouse://host:port/database, or chdb:///path, or leave empty")
        return value

    @property
    def chdb_path(self) -> Path:
        """Where the embedded engine keeps its data."""
        if self.clickhouse_url.startswith("chdb://"):
            return Path(self.clickhouse_url.removeprefix("chdb://"))
        return self.home / "clickhouse"
