"""The cluster DDL shipped in deploy/clickhouse is the generator's current output."""

from pathlib import Path

from analytics.history import schema
from analytics.history.cluster_ddl import cluster_ddl, render

SHIPPED = Path(__file__).parents[2] / "deploy" / "clickhouse" / "cluster.sql"


def test_the_shipped_cluster_sql_is_up_to_date() -> None:
    assert SHIPPED.read_text() == render(), "run: python -m analytics.history.cluster_ddl > " + str(
        SHIPPED
    )


def test_local_tables_replicate_and_distributed_tables_shard_by_order() -> None:
    statements = cluster_ddl(cluster="c1", database="d1")
    attempts_local, attempts = statements[1], statements[2]
    assert "ReplicatedMergeTree('/clickhouse/tables/{shard}/d1/attempts_local', '{replica}')" in (
        attempts_local
    )
    assert schema.ATTEMPT_LAYOUT in attempts_local  # same partitioning, ordering and TTL
    assert "INTERVAL 30 DAY" in attempts_local
    assert "Distributed('c1', 'd1', 'attempts_local', cityHash64(order_id))" in attempts
    assert all("ON CLUSTER 'c1'" in s for s in statements)
