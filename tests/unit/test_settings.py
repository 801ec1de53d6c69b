import pytest

from analytics.settings import AnalyticsSettings
from consumers.settings import WorkerSettings
from disparo.errors import SettingsError
from disparo.settings import KernelSettings, load


def test_defaults_match_the_documented_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DISPARO_KAFKA_BOOTSTRAP", "DISPARO_TOPIC_PREFIX", "DISPARO_API_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = load(AnalyticsSettings)
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.topic_prefix == "disparo."
    assert settings.api_port == 8080
    assert str(settings.chdb_path).endswith("clickhouse")


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPARO_KAFKA_BOOTSTRAP", "k1:9092,k2:9092")
    monkeypatch.setenv("DISPARO_WORKER_CONCURRENCY", "32")
    settings = load(WorkerSettings)
    assert settings.bootstrap_servers == ["k1:9092", "k2:9092"]
    assert settings.worker_concurrency == 32


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("DISPARO_KAFKA_BOOTSTRAP", "no-port", "DISPARO_KAFKA_BOOTSTRAP"),
        ("DISPARO_TOPIC_PREFIX", "bad prefix!", "DISPARO_TOPIC_PREFIX"),
        ("DISPARO_API_PORT", "99999", "DISPARO_API_PORT"),
        ("DISPARO_CLICKHOUSE_URL", "mysql://x", "DISPARO_CLICKHOUSE_URL"),
        ("DISPARO_LOG_LEVEL", "LOUD", "DISPARO_LOG_LEVEL"),
        ("DISPARO_KAFKA_SESSION_TIMEOUT_S", "91", "DISPARO_KAFKA_SESSION_TIMEOUT_S"),
        ("DISPARO_KAFKA_SESSION_TIMEOUT_S", "0.5", "DISPARO_KAFKA_SESSION_TIMEOUT_S"),
    ],
)
def test_bad_values_fail_fast_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, needle: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=needle):
        load(AnalyticsSettings)


def test_kernel_settings_ignore_other_services_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPARO_WORKER_CONCURRENCY", "not-a-number")
    assert load(KernelSettings).topic_prefix
