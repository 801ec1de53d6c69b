"""Typed settings from DISPARO_* environment variables, one object per service."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from disparo.errors import SettingsError
from disparo.retry_tiers import DEFAULT_SCHEDULE, Tier, parse_schedule
from disparo.secret_box import SecretBox
from disparo.targets import AllowEntry, parse_allowlist

_ACCOUNT = re.compile(r"[A-Za-z0-9._-]{1,64}")

S = TypeVar("S", bound="KernelSettings")


class KernelSettings(BaseSettings):
    """Settings every disparo process shares."""

    model_config = SettingsConfigDict(
        hide_input_in_errors=True, env_prefix="DISPARO_", extra="ignore", frozen=True
    )

    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma separated"
    )
    topic_prefix: str = Field("disparo.", description="prefix of every topic name")
    topic_replication: int = Field(
        1,
        ge=1,
        le=7,
        description="replicas of each topic disparo creates (3 on a cluster; "
        "min.insync.replicas = replicas - 1)",
    )
    kafka_session_timeout_s: float = Field(
        10.0,
        ge=1.0,
        le=90.0,  # faust refuses a session timeout above its 90 s request timeout
        description="how long a silent consumer keeps its group's partitions: a crashed "
        "instance's move to the others after it (heartbeats every third of it; at least the "
        "broker's group.min.session.timeout.ms, 6 s by default; at most 90)",
    )
    ops_host: str = Field(
        "127.0.0.1",
        description="address the dispatcher's and workers' /metrics, /healthz and /readyz "
        "listen on (0.0.0.0 in containers)",
    )
    home: Path = Field(Path(".local"), description="state, logs and pid files of the local stack")
    log_level: str = Field("INFO", description="Python logging level")
    log_format: Literal["json", "text"] = Field(
        "json", description="json: one object per line with dispatch_id/order_id fields; text"
    )
    retry_schedule: str = Field(
        DEFAULT_SCHEDULE, description="delays of the retry tiers; each names a retry.<tier> topic"
    )
    target_allowlist: str = Field(
        "",
        description="non-public webhook targets allowed for every account: IP:port, CIDR:port "
        "or [IPv6]:port (`*` as the port: every port), comma separated (empty: public "
        "unicast addresses only)",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="how every Kafka client connects: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism with SASL_PLAINTEXT or SASL_SSL"
    )
    kafka_sasl_username: str = Field("", description="SASL user name")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password")
    kafka_ca_file: str = Field(
        "",
        description="PEM file of the CA that signed the brokers' certificates (SSL, SASL_SSL); "
        "empty = the system's CAs",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="base64 of 32 random bytes: the AES-GCM key sealing rule secrets and header "
        "values in the rules topic (`make up` keeps one in DISPARO_HOME/secret.key)",
    )
    metrics_accounts: str = Field(
        "",
        description="accounts that get their own metric series, comma separated (default "
        "none: totals only, so series stay bounded however many accounts there are)",
    )
    secret_key_previous: SecretStr | None = Field(
        None, description="the key before a change, still read while `disparo secrets rewrap` runs"
    )

    @field_validator("metrics_accounts")
    @classmethod
    def _accounts_named(cls, value: str) -> str:
        for name in value.split(","):
            if name.strip() and not _ACCOUNT.fullmatch(name.strip()):
                raise ValueError(f"{name.strip()!r} is not an account id (1-64 of A-Za-z0-9._-)")
        return value

    @property
    def metered_accounts(self) -> frozenset[str]:
        """The accounts with metric series of their own."""
        return frozenset(n.strip() for n in self.metrics_accounts.split(",") if n.strip())

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_ports(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {value!r}")
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_is_legal(cls, value: str) -> str:
        legal = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if not set(value) <= legal:
            raise ValueError("may only hold letters, digits, '.', '_' and '-'")
        return value

    @field_validator("log_level")
    @classmethod
    def _level_known(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("one of DEBUG, INFO, WARNING, ERROR")
        return value.upper()

    @field_validator("retry_schedule")
    @classmethod
    def _schedule_parses(cls, value: str) -> str:
        parse_schedule(value)
        return value

    @field_validator("target_allowlist")
    @classmethod
    def _allowlist_parses(cls, value: str) -> str:
        parse_allowlist(value)
        return value

    @model_validator(mode="after")
    def _kafka_credentials_complete(self) -> KernelSettings:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"DISPARO_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "DISPARO_KAFKA_SASL_USERNAME and DISPARO_KAFKA_SASL_PASSWORD"
            )
        if self.kafka_ca_file and not Path(self.kafka_ca_file).is_file():
            raise ValueError(f"DISPARO_KAFKA_CA_FILE {self.kafka_ca_file} is not a readable file")
        return self

    @model_validator(mode="after")
    def _no_replaced_settings(self) -> KernelSettings:
        if "DISPARO_ALLOW_PRIVATE_TARGETS" in os.environ:
            raise ValueError(
                "DISPARO_ALLOW_PRIVATE_TARGETS was replaced by DISPARO_TARGET_ALLOWLIST: "
                "list the private addresses webhooks may go to (e.g. 127.0.0.1:8080, 10.1.2.3:8443)"
            )
        return self

    @property
    def allowed_targets(self) -> tuple[AllowEntry, ...]:
        """The parsed target allow-list."""
        return parse_allowlist(self.target_allowlist)

    @property
    def retry_tiers(self) -> tuple[Tier, ...]:
        """The parsed retry schedule."""
        return parse_schedule(self.retry_schedule)

    @property
    def kafka_heartbeat_s(self) -> float:
        """How often a group member heartbeats: every third of the session timeout."""
        return self.kafka_session_timeout_s / 3

    def secret_box(self) -> SecretBox:
        """The sealer of rule secrets; SettingsError naming the variable when the key is bad."""
        key, previous = self.secret_key, self.secret_key_previous
        return SecretBox(
            key.get_secret_value() if key else None,
            previous.get_secret_value() if previous else None,
        )

    @property
    def bootstrap_servers(self) -> list[str]:
        """The bootstrap list as the Kafka clients want it."""
        return [s.strip() for s in self.kafka_bootstrap.split(",")]


def load(cls: type[S], **overrides: Any) -> S:
    """Build settings from the environment, turning validation errors into one clear message."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"DISPARO_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            if err["loc"]
            else err["msg"].removeprefix("Value error, ")
            for err in exc.errors()
        )
        raise SettingsError(f"bad settings: {problems}") from None
