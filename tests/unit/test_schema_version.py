"""Which ClickHouse server versions can hold the attempts table."""

import pytest

from analytics.history.schema import version_problem


@pytest.mark.parametrize("version", ["23.3.1.1", "23.8.16.40", "24.10.1", "25.1"])
def test_servers_from_22_3_hold_the_schema(version: str) -> None:
    assert version_problem(version) is None


@pytest.mark.parametrize("version", ["18.16.1", "21.12.4.1", "22.8.5.29", "23.2.7"])
def test_older_servers_are_refused_naming_the_minimum(version: str) -> None:
    problem = version_problem(version)
    assert problem is not None
    assert f"ClickHouse server {version} is too old" in problem
    assert "23.3 or newer" in problem
    assert "DISPARO_CLICKHOUSE_URL" in problem


def test_an_unreadable_version_is_reported_as_such() -> None:
    assert version_problem("unknown") == "cannot read the ClickHouse server version 'unknown'"
