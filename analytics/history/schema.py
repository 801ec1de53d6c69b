"""The attempts table: one row per delivery attempt, 30 days of history."""

from dataclasses import dataclass

from analytics.history.dispatch_sql import dispatch_id_sql

DATABASE = "disparo"
TABLE = "attempts"
RESENDS_TABLE = "resend_requests"
AUDIT_TABLE = "audit"
AUDIT_RETENTION_DAYS = 365
RETENTION_DAYS = 30

# The oldest server with every feature the schema and the sink use: Bool (21.12),
# insert_deduplication_token (22.2), projections used by default (an LTS after 22.x),
# DateTime64, TTL and codecs (older).
MIN_SERVER_VERSION = (23, 3)


@dataclass(frozen=True)
class Column:
    """One column of the attempts table; `shown` ones are the API's list items and the CSV."""

    name: str
    kind: str
    shown: bool = False


# `held` and `superseded` came with order-aware rules, `regressed` with the status guard
# (none of them is a failure).
STATUS_TYPE = "Enum8('success' = 1, 'failure' = 2, 'held' = 3, 'superseded' = 4, 'regressed' = 5)"
STATUS_COLUMN_OLD = "Enum8('success' = 1, 'failure' = 2)"
# Every earlier status type, oldest first: each is widened to STATUS_TYPE.
STATUS_TYPES_OLD = (
    STATUS_COLUMN_OLD,
    "Enum8('success' = 1, 'failure' = 2, 'held' = 3, 'superseded' = 4)",
)


# The attempt record, defined once: the table (single-node and cluster DDL), the sink's rows,
# the API's items, the CSV export and the order-search projection all come from this list.
ATTEMPT: tuple[Column, ...] = (
    Column("dispatched_at", "DateTime64(3, 'UTC')", shown=True),
    Column("attempt_id", "UUID", shown=True),
    Column("dispatch_id", "String", shown=True),
    Column("attempt", "UInt16", shown=True),
    Column("manual", "Bool", shown=True),
    Column("final", "Bool", shown=True),
    Column("order_id", "String", shown=True),
    Column("order_status", "LowCardinality(String)", shown=True),
    Column("event_id", "UUID"),
    Column("event_type", "LowCardinality(String)", shown=True),
    Column("rule_id", "UInt64", shown=True),
    Column("url", "String", shown=True),
    Column("status", STATUS_TYPE, shown=True),
    Column("reason", "LowCardinality(String)", shown=True),
    Column("http_status", "UInt16 COMMENT '0 when no HTTP answer came'", shown=True),
    Column("error", "String", shown=True),
    Column("duration_ms", "UInt32", shown=True),
    Column("request_excerpt", "String CODEC(ZSTD(3))"),
    Column("response_excerpt", "String CODEC(ZSTD(3))"),
    Column("kafka_partition", "UInt16"),
    Column("kafka_offset", "UInt64"),
    Column(
        "retry_tier",
        "LowCardinality(String) COMMENT 'tier of a scheduled retry; empty if final'",
        shown=True,
    ),
    Column("event_json", "String CODEC(ZSTD(3)) COMMENT 'the order event, for resends'"),
    Column("request_headers", "String CODEC(ZSTD(3)) COMMENT 'JSON object; credentials masked'"),
    Column("account_id", "LowCardinality(String) DEFAULT 'default'", shown=True),
)
ATTEMPT_COLUMNS: tuple[tuple[str, str], ...] = tuple((c.name, c.kind) for c in ATTEMPT)
ITEM_FIELDS: tuple[str, ...] = tuple(c.name for c in ATTEMPT if c.shown)
# The CSV leads with what a person reads first, then every other item field.
_CSV_LEADING = (
    "dispatched_at", "order_id", "order_status", "event_type", "rule_id", "status", "reason",
    "http_status", "url",
)  # fmt: skip
CSV_FIELDS: tuple[str, ...] = _CSV_LEADING + tuple(f for f in ITEM_FIELDS if f not in _CSV_LEADING)
# Columns added after the first release: tables created before them get an ALTER.
ADDED_COLUMNS = ("retry_tier", "event_json", "request_headers", "account_id")
# Counts per hour, account, status, reason and rule: period summaries and failure
# breakdowns, of one account or all, read these instead of the rows (hour-aligned; the
# partial hours at the edges read rows). Rules belong to one account, so the account adds
# no rows; leading, it lets one account's counts skip the other accounts' granules. Tables
# from before accounts also keep their `hourly` one (no account column).
HOURLY_PROJECTION = (
    "PROJECTION account_hourly (SELECT account_id, toStartOfHour(dispatched_at), status, "
    "reason, rule_id, count() "
    "GROUP BY account_id, toStartOfHour(dispatched_at), status, reason, rule_id)"
)
# The screen's columns ordered by order: an order search seeks instead of scanning.
BY_ORDER_PROJECTION = (
    f"PROJECTION by_order (SELECT {', '.join(ITEM_FIELDS)} ORDER BY order_id, dispatched_at)"
)
# The screen's columns ordered by account then time: an account's pages seek to its rows.
BY_ACCOUNT_PROJECTION = (
    f"PROJECTION by_account (SELECT {', '.join(ITEM_FIELDS)} "
    "ORDER BY account_id, dispatched_at, attempt_id)"
)
# A bloom filter on order_id (the first release) made the planner skip `by_order`: with
# the index it counted few marks, then read the filter of every granule (55 ms vs 14 ms).
ATTEMPT_INDEXES = (HOURLY_PROJECTION, BY_ORDER_PROJECTION, BY_ACCOUNT_PROJECTION)
# Weekly parts: planning a query costs per part, and 30 daily parts made an account's page
# and summary take 21-24 ms against 11-14 with 5 weekly ones on 30 M rows (docs/benchmarks.md).
# The TTL then drops a day by rewriting the oldest week's part (52 s a day at 1 M rows/day).
# Tables created before keep their daily parts (docs/operations.md says how to move them).
ATTEMPT_LAYOUT = f"""PARTITION BY toMonday(dispatched_at)
ORDER BY (dispatched_at, attempt_id)
TTL toDateTime(dispatched_at) + INTERVAL {RETENTION_DAYS} DAY"""
RESEND_TABLE_BODY = """(
    requested_at DateTime64(3, 'UTC'),
    request_id   UUID,
    requested_by String,
    filter       String COMMENT 'the request body, JSON',
    queued       UInt32
)"""
RESEND_LAYOUT = f"""ORDER BY requested_at
TTL toDateTime(requested_at) + INTERVAL {RETENTION_DAYS} DAY"""


AUDIT_TABLE_BODY = """(
    at         DateTime64(3, 'UTC'),
    audit_id   UUID,
    actor      String COMMENT 'the name of the key that acted',
    key_id     String,
    account_id String,
    action     LowCardinality(String),
    target     String,
    details    String CODEC(ZSTD(3)) COMMENT 'JSON; secrets masked'
)"""
AUDIT_LAYOUT = f"""PARTITION BY toYYYYMM(at)
ORDER BY (at, audit_id)
TTL toDateTime(at) + INTERVAL {AUDIT_RETENTION_DAYS} DAY"""

HEALTH_TABLE = "rule_health"
HEALTH_TABLE_BODY = """(
    at            DateTime64(3, 'UTC'),
    rule_id       UInt64,
    account_id    String,
    state         LowCardinality(String) COMMENT 'failing or recovered',
    failure_ratio Float64 COMMENT 'of the latest slice of the window'
)"""
HEALTH_LAYOUT = f"""ORDER BY (rule_id, at)
TTL toDateTime(at) + INTERVAL {RETENTION_DAYS} DAY"""

# Each account's receipt SLA changes (issue 32): breached or recovered, as announced.
SLA_HEALTH_TABLE = "sla_health"
SLA_HEALTH_TABLE_BODY = """(
    at           DateTime64(3, 'UTC'),
    account_id   String,
    state        LowCardinality(String) COMMENT 'breached or recovered',
    breach_ratio Float64 COMMENT 'of the latest slice of the window'
)"""
SLA_HEALTH_LAYOUT = f"""ORDER BY (account_id, at)
TTL toDateTime(at) + INTERVAL {RETENTION_DAYS} DAY"""

# The first answer to each POST resend sent with an `Idempotency-Key` (issue 28): a retry of
# the same request within a day answers it again and queues nothing.
IDEMPOTENCY_TABLE = "idempotency"
IDEMPOTENCY_TABLE_BODY = """(
    at          DateTime64(3, 'UTC'),
    scope       String COMMENT 'the account of the key that asked; empty for platform keys',
    idem_key    String COMMENT 'the Idempotency-Key header',
    request_sha String COMMENT 'SHA-256 of the route and body: a key reused differently is refused',
    answer      String CODEC(ZSTD(3)) COMMENT 'the JSON answered the first time'
)"""
IDEMPOTENCY_LAYOUT = """ORDER BY (scope, idem_key, at)
TTL toDateTime(at) + INTERVAL 1 DAY"""

# What became of each held row (a paused rule's dispatch): released, discarded or expired.
HELD_TABLE = "held_actions"
HELD_TABLE_BODY = """(
    at         DateTime64(3, 'UTC'),
    attempt_id UUID COMMENT 'the held row acted on',
    dispatch_id String,
    rule_id    UInt64,
    held_at    DateTime64(3, 'UTC') COMMENT 'when the row was held (its dispatched_at)',
    action     LowCardinality(String) COMMENT 'released or discarded',
    actor      String
)"""
HELD_LAYOUT = f"""ORDER BY (rule_id, attempt_id)
TTL toDateTime(held_at) + INTERVAL {RETENTION_DAYS} DAY"""


# Every order event published, for order coverage, dry runs and backfills (issue 15): the
# sink stores each record once; a producer's repeated publish of one event (same event_id)
# is merged away by the engine and counted once by the queries (uniqExact(event_id)).
# `published_at` is the record's time in Kafka, not the producer's `occurred_at`: partitions
# and TTL must not follow a clock that any publisher sets.
EVENTS_TABLE = "events"
EVENTS_TABLE_BODY = """(
    published_at    DateTime64(3, 'UTC'),
    event_id        UUID,
    event_type      LowCardinality(String),
    order_id        String,
    order_status    LowCardinality(String),
    occurred_at     DateTime64(3, 'UTC'),
    account_id      LowCardinality(String),
    fields          Map(String, String) CODEC(ZSTD(3)) COMMENT 'filter path -> value as text',
    search_values   Map(String, String) COMMENT 'the account search_keys: path -> value',
    event_json      String CODEC(ZSTD(3)) COMMENT 'the order event, for resends and backfills',
    kafka_partition UInt16,
    kafka_offset    UInt64,
    rule_ids        Array(UInt64) COMMENT 'the active rules it matched when stored'
)"""
EVENTS_LAYOUT = f"""PARTITION BY toDate(published_at)
ORDER BY (account_id, order_id, event_id)
TTL toDateTime(published_at) + INTERVAL {RETENTION_DAYS} DAY"""
EVENTS_ADDED_COLUMNS = (("search_values", "Map(String, String)"), ("rule_ids", "Array(UInt64)"))
# The values of each account's search keys, by value: a support desk's tracking code or NF-e
# key finds its orders by seeking (filled from the events inserted, by SEARCH_VIEW).
SEARCH_TABLE = "search_keys"
SEARCH_TABLE_BODY = """(
    value        String,
    account_id   LowCardinality(String),
    order_id     String,
    path         LowCardinality(String) COMMENT 'the payload path the value was read at',
    published_at DateTime64(3, 'UTC')
)"""
# Monthly parts (two at most in 30 days): a lookup seeks one granule in each.
SEARCH_LAYOUT = f"""PARTITION BY toYYYYMM(published_at)
ORDER BY (value, account_id, order_id)
TTL toDateTime(published_at) + INTERVAL {RETENTION_DAYS} DAY"""
SEARCH_VIEW = "search_keys_feed"


def search_view_sql(database: str, events: str, target: str, on: str = "") -> str:
    """The materialized view that writes the search values of each inserted event."""
    return (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.{SEARCH_VIEW}{on and ' ' + on} "
        f"TO {database}.{target} AS SELECT value, account_id, order_id, path, published_at "
        f"FROM {database}.{events} "
        "ARRAY JOIN mapKeys(search_values) AS path, mapValues(search_values) AS value"
    )


# Each dispatch's state, kept by two views as the sinks insert (issue 32): what its event
# says and when it was published (from the events, per rule it matched), and when it was
# first tried and first answered 2xx (from the attempts). An AggregatingMergeTree of
# min/max columns: a replayed insert or a repeated row changes nothing, whatever the order
# the two sinks store them in, and a dispatch's rows merge into one. Read with FINAL.
DISPATCH_STATE_TABLE = "dispatch_state"
_MAX_TIME = "SimpleAggregateFunction(max, DateTime64(3, 'UTC'))"
_MIN_TIME = "SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC')))"
_FLAG = "SimpleAggregateFunction(max, UInt8)"
DISPATCH_STATE_BODY = f"""(
    account_id       LowCardinality(String),
    rule_id          UInt64,
    order_id         String,
    dispatch_id      String,
    event_id         SimpleAggregateFunction(max, UUID),
    event_type       SimpleAggregateFunction(max, String),
    order_status     SimpleAggregateFunction(max, String),
    occurred_at      {_MAX_TIME},
    published_at     {_MAX_TIME} COMMENT 'the event record in Kafka; 0 until the event is stored',
    first_attempt_at {_MIN_TIME} COMMENT 'the first POST began',
    first_ok_at      {_MIN_TIME} COMMENT 'the first 2xx came back',
    settled          {_FLAG} COMMENT 'delivered, superseded or regressed: nothing owed',
    failed           {_FLAG} COMMENT 'a final failure',
    held             {_FLAG},
    last_at          {_MAX_TIME}
)"""
DISPATCH_STATE_LAYOUT = f"""ORDER BY (account_id, rule_id, order_id, dispatch_id)
TTL toDateTime(last_at) + INTERVAL {RETENTION_DAYS} DAY"""
_NO_TIME = "CAST(NULL, 'Nullable(DateTime64(3, \\'UTC\\'))')"


def dispatch_state_views(
    database: str, events: str, attempts: str, target: str, on: str = ""
) -> list[str]:
    """The two materialized views that keep `dispatch_state` from the sinks' inserts."""
    head = f"CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.{target}"
    on = f" {on}" if on else ""
    return [
        f"{head}_from_events{on} TO {database}.{target} AS SELECT account_id, rule_id, "
        f"order_id, {dispatch_id_sql('event_id', 'rule_id')} AS dispatch_id, event_id, "
        "toString(event_type) AS event_type, toString(order_status) AS order_status, "
        f"occurred_at, published_at, {_NO_TIME} AS first_attempt_at, "
        f"{_NO_TIME} AS first_ok_at, toUInt8(0) AS settled, toUInt8(0) AS failed, "
        "toUInt8(0) AS held, published_at AS last_at "
        f"FROM {database}.{events} ARRAY JOIN rule_ids AS rule_id",
        f"{head}_from_attempts{on} TO {database}.{target} AS SELECT account_id, rule_id, "
        "order_id, dispatch_id, event_id, toString(event_type) AS event_type, "
        "toString(order_status) AS order_status, parseDateTime64BestEffortOrZero("
        "JSONExtractString(event_json, 'occurred_at'), 3, 'UTC') AS occurred_at, "
        "toDateTime64(0, 3, 'UTC') AS published_at, "
        "if(status IN ('success', 'failure'), dispatched_at, NULL) AS first_attempt_at, "
        "if(status = 'success', dispatched_at + toIntervalMillisecond(duration_ms), NULL) "
        "AS first_ok_at, toUInt8(status IN ('success', 'superseded', 'regressed')) AS settled, "
        "toUInt8(status = 'failure' AND final) AS failed, toUInt8(status = 'held') AS held, "
        f"dispatched_at AS last_at FROM {database}.{attempts} WHERE rule_id != 0",
    ]


# Time columns of the tables the sinks fill: a server insert takes them as datetimes.
DATETIME_COLUMNS: dict[str, tuple[str, ...]] = {
    TABLE: ("dispatched_at",),
    EVENTS_TABLE: ("published_at", "occurred_at"),
}


def attempt_table_body() -> str:
    """The column and index list of the attempts table, as in CREATE TABLE (...)."""
    lines = [f"    {name} {kind}" for name, kind in ATTEMPT_COLUMNS]
    lines += [f"    {index}" for index in ATTEMPT_INDEXES]
    return "(\n" + ",\n".join(lines) + "\n)"


def version_problem(version: str) -> str | None:
    """Why a server of this version cannot hold the schema, or None when it can."""
    try:
        found = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return f"cannot read the ClickHouse server version {version!r}"
    if found >= MIN_SERVER_VERSION:
        return None
    need = ".".join(map(str, MIN_SERVER_VERSION))
    return (
        f"ClickHouse server {version} is too old for disparo's attempts table: it needs "
        f"{need} or newer (Bool, DateTime64, TTL, projections, insert_deduplication_token); "
        "upgrade the server or leave DISPARO_CLICKHOUSE_URL empty to use the embedded engine"
    )


def status_migration(current_type: str, database: str = DATABASE) -> list[str]:
    """Statements that widen a table's earlier status type to STATUS_TYPE (none when done).

    ClickHouse refuses to alter a column its projections use: they are dropped, the enum
    widened (metadata only) and the projections rebuilt for every part.
    """
    if current_type not in STATUS_TYPES_OLD:
        return []
    table = f"{database}.{TABLE}"
    names = [p.split()[1] for p in ATTEMPT_INDEXES]
    return [
        *(f"ALTER TABLE {table} DROP PROJECTION IF EXISTS {name}" for name in (*names, "hourly")),
        f"ALTER TABLE {table} MODIFY COLUMN status {STATUS_TYPE}",
        *(f"ALTER TABLE {table} ADD {_if_not_exists(p)}" for p in ATTEMPT_INDEXES),
        *(f"ALTER TABLE {table} MATERIALIZE PROJECTION {name}" for name in names),
    ]


def _if_not_exists(projection: str) -> str:
    return projection.replace("PROJECTION", "PROJECTION IF NOT EXISTS", 1)


def ddl(database: str = DATABASE) -> list[str]:
    """Statements that create the database and the attempts table if missing."""
    return [
        f"CREATE DATABASE IF NOT EXISTS {database}",
        f"CREATE TABLE IF NOT EXISTS {database}.{TABLE} {attempt_table_body()}\n"
        f"ENGINE = MergeTree\n{ATTEMPT_LAYOUT}\n"
        "SETTINGS non_replicated_deduplication_window = 1000",
        *(
            f"ALTER TABLE {database}.{TABLE} ADD COLUMN IF NOT EXISTS {name} {kind}"
            for name, kind in ATTEMPT_COLUMNS
            if name in ADDED_COLUMNS
        ),
        f"ALTER TABLE {database}.{TABLE} DROP INDEX IF EXISTS order_id_bloom",
        # Tables from before the projections get them for new parts; old parts age out.
        *(f"ALTER TABLE {database}.{TABLE} ADD {_if_not_exists(p)}" for p in ATTEMPT_INDEXES),
        f"CREATE TABLE IF NOT EXISTS {database}.{RESENDS_TABLE} {RESEND_TABLE_BODY}\n"
        f"ENGINE = MergeTree\n{RESEND_LAYOUT}",
        f"CREATE TABLE IF NOT EXISTS {database}.{HEALTH_TABLE} {HEALTH_TABLE_BODY}\n"
        f"ENGINE = MergeTree\n{HEALTH_LAYOUT}",
        f"CREATE TABLE IF NOT EXISTS {database}.{HELD_TABLE} {HELD_TABLE_BODY}\n"
        f"ENGINE = MergeTree\n{HELD_LAYOUT}",
        f"CREATE TABLE IF NOT EXISTS {database}.{SLA_HEALTH_TABLE} {SLA_HEALTH_TABLE_BODY}\n"
        f"ENGINE = MergeTree\n{SLA_HEALTH_LAYOUT}",
        f"CREATE TABLE IF NOT EXISTS {database}.{EVENTS_TABLE} {EVENTS_TABLE_BODY}\n"
        f"ENGINE = ReplacingMergeTree\n{EVENTS_LAYOUT}",
        *(
            f"ALTER TABLE {database}.{EVENTS_TABLE} ADD COLUMN IF NOT EXISTS {name} {kind}"
            for name, kind in EVENTS_ADDED_COLUMNS
        ),
        f"CREATE TABLE IF NOT EXISTS {database}.{SEARCH_TABLE} {SEARCH_TABLE_BODY}\n"
        f"ENGINE = ReplacingMergeTree\n{SEARCH_LAYOUT}",
        search_view_sql(database, EVENTS_TABLE, SEARCH_TABLE),
        f"CREATE TABLE IF NOT EXISTS {database}.{DISPATCH_STATE_TABLE} {DISPATCH_STATE_BODY}\n"
        f"ENGINE = AggregatingMergeTree\n{DISPATCH_STATE_LAYOUT}",
        *dispatch_state_views(database, EVENTS_TABLE, TABLE, DISPATCH_STATE_TABLE),
        f"CREATE TABLE IF NOT EXISTS {database}.{IDEMPOTENCY_TABLE} {IDEMPOTENCY_TABLE_BODY}\n"
        f"ENGINE = MergeTree\n{IDEMPOTENCY_LAYOUT}\n"
        "SETTINGS non_replicated_deduplication_window = 1000",
        f"CREATE TABLE IF NOT EXISTS {database}.{AUDIT_TABLE} {AUDIT_TABLE_BODY}\n"
        f"ENGINE = MergeTree\n{AUDIT_LAYOUT}\n"
        "SETTINGS non_replicated_deduplication_window = 1000",
    ]


# What an expunged order's bodies read (request, answer, event): its personal data is gone.
EXPUNGED = "expunged"


def expunge_sql(database: str, where: str) -> list[str]:
    """Mutations that blank an order's bodies and payloads (rows matching `where`, SQL over
    `order_id` and `account_id`) and drop its search values, keeping ids, statuses, times
    and codes; each waits until the parts are rewritten (the old bytes then leave with the
    old parts)."""
    blank = f"'{EXPUNGED}'"
    sync = "SETTINGS mutations_sync = 1"
    return [
        f"ALTER TABLE {database}.{TABLE} UPDATE request_excerpt = {blank}, "
        f"response_excerpt = {blank}, event_json = {blank} WHERE {where} {sync}",
        f"ALTER TABLE {database}.{EVENTS_TABLE} UPDATE event_json = {blank}, "
        "fields = mapFilter((k, v) -> NOT startsWith(k, 'payload'), fields), "
        f"search_values = map() WHERE {where} {sync}",
        f"ALTER TABLE {database}.{SEARCH_TABLE} DELETE WHERE {where} {sync}",
    ]
