"""The clickhouse-driver path on a real server: Debian's clickhouse-server (18.16, an old release).

It runs what 18.16 supports (connect, a plain table, batch inserts, selects, the sink across a
server restart) and proves that the full schema is refused with the minimum version named.
"""

from __future__ import annotations

import subprocess
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaProducer

from analytics.errors import SchemaRefused
from analytics.history import schema
from analytics.history.sink import INSERT_FAILURES, OutcomeSink, row_of
from analytics.history.store import ServerStore, ensure_schema
from analytics.settings import AnalyticsSettings
from disparo.kafka import ensure_topics, make_producer
from disparo.schemas import AttemptOutcome
from disparo.topics import Topics
from tests.factories import outcome
from tests.integration.clickhouse_server import ClickHouseServer
from tests.integration.conftest import DISPARO, eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

# The attempts columns in types an 18.16 server knows (no Bool, DateTime64, codecs or TTL).
PLAIN_ATTEMPTS = """
CREATE TABLE {database}.attempts (
    dispatched_at DateTime, attempt_id UUID, dispatch_id String, attempt UInt16,
    manual UInt8, final UInt8, order_id String, order_status String, event_id UUID,
    event_type String, rule_id UInt64, url String,
    status Enum8('success' = 1, 'failure' = 2), reason String, http_status UInt16,
    error String, duration_ms UInt32, request_excerpt String, response_excerpt String,
    kafka_partition UInt16, kafka_offset UInt64, retry_tier String, event_json String,
    request_headers String, account_id String
) ENGINE = MergeTree PARTITION BY toDate(dispatched_at) ORDER BY (dispatched_at, attempt_id)
"""


@pytest.fixture(scope="module")
def old_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseServer]:
    server = ClickHouseServer(tmp_path_factory.mktemp("clickhouse-18"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def plain_store(old_server: ClickHouseServer) -> Iterator[ServerStore]:
    database = f"t{uuid.uuid4().hex[:8]}"
    store = ServerStore(f"{old_server.url}/{database}")
    store.command(f"CREATE DATABASE {database}")
    store.command(PLAIN_ATTEMPTS.format(database=database))
    yield store
    store.command(f"DROP DATABASE {database}")
    store.close()


def numbered(n: int, status: str = "success") -> AttemptOutcome:
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=n)
    return outcome(f"ORD-{n}", at, status, duration_ms=n % 1000)


def count(store: ServerStore, what: str = "count()") -> int:
    return int(store.select(f"SELECT {what} AS n FROM {store.database}.attempts")[0]["n"])


def test_full_schema_is_refused_naming_the_minimum_version(old_server: ClickHouseServer) -> None:
    store = ServerStore(f"{old_server.url}/disparo_refused")
    with pytest.raises(SchemaRefused, match=r"18\.16\.1 is too old .* needs 23\.3 or newer"):
        ensure_schema(store)
    databases = {r["name"] for r in store.select("SHOW DATABASES")}
    assert "disparo_refused" not in databases  # refused before anything was created
    store.close()


def test_analytics_service_exits_with_the_version_message(old_server: ClickHouseServer) -> None:
    env = {"PATH": "/usr/bin:/bin", "DISPARO_CLICKHOUSE_URL": f"{old_server.url}/disparo"}
    done = subprocess.run(
        [DISPARO, "analytics"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "too old for disparo's attempts table" in done.stderr
    assert "23.3 or newer" in done.stderr


def test_batch_inserts_and_selects_round_trip(plain_store: ServerStore) -> None:
    outcomes = [numbered(n, "failure" if n % 10 == 0 else "success") for n in range(10_000)]
    rows = [row_of(o, partition=n % 6, offset=n) for n, o in enumerate(outcomes)]
    for start in range(0, len(rows), 2_500):
        plain_store.insert(schema.TABLE, rows[start : start + 2_500], dedup_token=str(start))

    assert count(plain_store) == 10_000
    assert count(plain_store, "countIf(status = 'failure')") == 1_000
    found = plain_store.select(  # 18.16 has no query parameters: a literal
        f"SELECT order_id, status, http_status, attempt_id FROM {plain_store.database}.attempts "
        "WHERE order_id = 'ORD-4210'"
    )
    assert found == [
        {
            "order_id": "ORD-4210",
            "status": "failure",
            "http_status": 503,
            "attempt_id": uuid.UUID(outcomes[4210].attempt_id),
        }
    ]


def test_sink_keeps_every_row_across_a_server_restart(
    old_server: ClickHouseServer, plain_store: ServerStore, kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    settings = AnalyticsSettings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=prefix,
        home=tmp_path,
        sink_group=f"{prefix}sink",
        sink_batch=100,
        sink_linger_ms=20,
    )
    ensure_topics(settings)
    producer = make_producer(settings, client_id="test-sink")
    sink = OutcomeSink(settings, plain_store, producer)
    thread = threading.Thread(target=sink.run, daemon=True)
    thread.start()
    failures_before = INSERT_FAILURES._value.get()
    try:
        publish(producer, Topics(prefix).outcomes, range(0, 1_000))
        eventually(lambda: count(plain_store) == 1_000, 60, "first 1,000 rows stored")

        old_server.stop()
        publish(producer, Topics(prefix).outcomes, range(1_000, 2_000))
        eventually(lambda: not sink.store_ok, 30, "the sink to notice the server is gone")
        assert not sink.consuming()  # readiness follows the store
        old_server.start()

        eventually(lambda: count(plain_store) >= 2_000, 90, "rows after the restart")
        assert count(plain_store) == 2_000
        assert count(plain_store, "uniqExact(attempt_id)") == 2_000
        assert count(plain_store, "uniqExact(order_id)") == 2_000
        assert INSERT_FAILURES._value.get() > failures_before
        eventually(sink.consuming, 30, "the sink to be ready again")
    finally:
        sink.stop()
        thread.join(30)
        producer.close(5)
    assert not thread.is_alive()


def publish(producer: KafkaProducer, topic: str, numbers: range) -> None:
    for n in numbers:
        o = numbered(n)
        producer.send(topic, key=o.dispatch_id.encode(), value=o.model_dump_json().encode())
    producer.flush()
