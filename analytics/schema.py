"""The attempts table: one row per delivery attempt, 30 days of history."""

DATABASE = "disparo"
TABLE = "attempts"
RESENDS_TABLE = "resend_requests"
RETENTION_DAYS = 30

COLUMNS = (
    "dispatched_at",
    "attempt_id",
    "dispatch_id",
    "attempt",
    "manual",
    "final",
    "order_id",
    "order_status",
    "event_id",
    "event_type",
    "rule_id",
    "url",
    "status",
    "reason",
    "http_status",
    "error",
    "duration_ms",
    "request_excerpt",
    "response_excerpt",
    "kafka_partition",
    "kafka_offset",
)


def ddl(database: str = DATABASE) -> list[str]:
    """Statements that create the database and the attempts table if missing."""
    return [
        f"CREATE DATABASE IF NOT EXISTS {database}",
        f"""
CREATE TABLE IF NOT EXISTS {database}.{TABLE} (
    dispatched_at    DateTime64(3, 'UTC'),
    attempt_id       UUID,
    dispatch_id      String,
    attempt          UInt16,
    manual           Bool,
    final            Bool,
    order_id         String,
    order_status     LowCardinality(String),
    event_id         UUID,
    event_type       LowCardinality(String),
    rule_id          UInt64,
    url              String,
    status           Enum8('success' = 1, 'failure' = 2),
    reason           LowCardinality(String),
    http_status      UInt16 COMMENT '0 when no HTTP answer came',
    error            String,
    duration_ms      UInt32,
    request_excerpt  String CODEC(ZSTD(3)),
    response_excerpt String CODEC(ZSTD(3)),
    kafka_partition  UInt16,
    kafka_offset     UInt64,
    INDEX order_id_bloom order_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(dispatched_at)
ORDER BY (dispatched_at, attempt_id)
TTL toDateTime(dispatched_at) + INTERVAL {RETENTION_DAYS} DAY
SETTINGS non_replicated_deduplication_window = 1000
""",
        # Columns added after the first release, for tables created before them.
        f"ALTER TABLE {database}.{TABLE} ADD COLUMN IF NOT EXISTS retry_tier "
        "LowCardinality(String) COMMENT 'tier of the scheduled retry; empty when final'",
        f"ALTER TABLE {database}.{TABLE} ADD COLUMN IF NOT EXISTS event_json String "
        "CODEC(ZSTD(3)) COMMENT 'the order event, for resends'",
        f"""
CREATE TABLE IF NOT EXISTS {database}.{RESENDS_TABLE} (
    requested_at DateTime64(3, 'UTC'),
    request_id   UUID,
    requested_by String,
    filter       String COMMENT 'the request body, JSON',
    queued       UInt32
)
ENGINE = MergeTree
ORDER BY requested_at
TTL toDateTime(requested_at) + INTERVAL {RETENTION_DAYS} DAY
""",
    ]
