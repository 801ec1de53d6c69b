"""The ClickHouse store behind one interface: chdb embedded, or a server via clickhouse-driver."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

from pydantic_core import from_json, to_json

from analytics.errors import QueryTimeout, SchemaRefused, StoreError
from analytics.history import schema

Row = dict[str, Any]
L = TypeVar("L")
log = logging.getLogger(__name__)
READ_LIMIT_S = 30.0  # default time limit of a read (DISPARO_QUERY_TIMEOUT_S)
# Reads run on a few connections at once: a long export's pages do not queue a backfill's
# lookups or the page's summary behind them.
READ_CONNECTIONS = 4
# Inserts run on connections of their own, one per sink: the events sink and the outcomes
# sink never queue behind each other, nor behind a sink's lookup or a duty's command.
INSERT_CONNECTIONS = 2
TIMEOUT_EXCEEDED = 159  # ClickHouse's error code for a query past max_execution_time


class Store(Protocol):
    """What the sinks, the duties and the API need from ClickHouse.

    Reads (`select`: the API, the page, the duties; each under a time limit) run on a few
    connections of their own, writes (`insert`, `command`, and `check`, the sinks' own
    lookups before they write) on another, so a sink never waits behind a slow read.
    """

    database: str
    read_limit_s: float

    def command(self, sql: str) -> None: ...

    def select(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]: ...

    def check(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]: ...

    def insert(self, table: str, rows: Sequence[Row], dedup_token: str) -> None: ...

    def insert_lines(self, table: str, body: bytes, dedup_token: str) -> None:
        """Insert rows given as JSON lines (the sinks' batches, handed over as they are)."""

    def close(self) -> None: ...


def timed_out(limit_s: float) -> QueryTimeout:
    """The error of a read past its limit, saying what to do."""
    return QueryTimeout(
        f"the query ran past its limit of {limit_s:g} s (DISPARO_QUERY_TIMEOUT_S); "
        "narrow the period or add filters"
    )


def ensure_schema(store: Store) -> None:
    """Create the database and the attempts table when missing; refuse a too-old server."""
    version = str(store.select("SELECT version() AS v")[0]["v"])
    problem = schema.version_problem(version)
    if problem:
        raise SchemaRefused(problem)
    for statement in schema.ddl(store.database):
        store.command(statement)
    found = store.select(
        "SELECT type FROM system.columns WHERE database = {db:String} "
        f"AND table = '{schema.TABLE}' AND name = 'status'",
        {"db": store.database},
    )
    for statement in schema.status_migration(
        str(found[0]["type"]) if found else "", store.database
    ):
        store.command(statement)


class ChdbStore:
    """The embedded engine: connections to one data path (a few for reads, one for writes),
    each used by one caller at a time."""

    def __init__(
        self, path: Path, database: str = schema.DATABASE, read_limit_s: float = READ_LIMIT_S
    ) -> None:

        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.database = database
        self.read_limit_s = read_limit_s
        try:
            self._write = _Lane(path, ())
            self._inserts = _Pool([_Lane(path, ()) for _ in range(INSERT_CONNECTIONS)])
            limit = (f"SET max_execution_time = {read_limit_s:g}",)
            self._reads = _Pool([_Lane(path, limit) for _ in range(READ_CONNECTIONS)])
        except Exception as exc:  # chdb raises plain errors when a path is locked
            raise StoreError(
                f"cannot open chdb at {path} (is another process using it?): {exc}"
            ) from exc

    def command(self, sql: str) -> None:
        self._write.run(sql, "CSV", None)

    def select(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        try:
            with self._reads.lane() as lane:
                text = lane.run(sql, "JSONEachRow", params)
        except StoreError as exc:
            if f"Code: {TIMEOUT_EXCEEDED}." in str(exc):
                raise timed_out(self.read_limit_s) from exc
            raise
        return [json.loads(line) for line in text.splitlines() if line]

    def check(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        text = self._write.run(sql, "JSONEachRow", params)
        return [json.loads(line) for line in text.splitlines() if line]

    def insert(self, table: str, rows: Sequence[Row], dedup_token: str) -> None:
        self.insert_lines(table, b"".join(to_json(r) + b"\n" for r in rows), dedup_token)

    def insert_lines(self, table: str, body: bytes, dedup_token: str) -> None:
        if not body:
            return
        head = (
            f"INSERT INTO {self.database}.{table} SETTINGS "
            f"insert_deduplication_token = '{_sql_token(dedup_token)}', "
            "date_time_input_format = 'best_effort' FORMAT JSONEachRow\n"
        )
        # chdb takes the statement as text: the rows are decoded once, never parsed here.
        with self._inserts.lane() as lane:
            lane.run(head + body.decode(), "CSV", None)

    def close(self) -> None:
        for lane in (*self._reads.lanes, *self._inserts.lanes):
            lane.close()
        self._write.close()


class _Lane:
    """One chdb connection, given to one caller at a time, and the statements that set it up.

    A connection whose query failed (a read past its time limit) still holds part of that
    query's output, which would come back with the next answer: it is replaced.
    """

    def __init__(self, path: Path, setup: Sequence[str]) -> None:
        self.path = path
        self.setup = tuple(setup)
        self.lock = threading.Lock()
        self.connection = self._connect()

    def _connect(self) -> Any:
        import chdb

        connection = chdb.connect(str(self.path))
        for statement in self.setup:
            connection.query(statement, "CSV")
        return connection

    def run(self, sql: str, fmt: str, params: Mapping[str, Any] | None) -> str:
        escaped = {k: _escaped(v) for k, v in (params or {}).items()}
        with self.lock:
            try:
                result = self.connection.query(sql, fmt, params=escaped)
            except Exception as exc:
                self.connection.close()
                self.connection = self._connect()
                raise StoreError(f"ClickHouse (chdb) error: {exc}") from exc
        return str(result.bytes().decode()) if result is not None else ""

    def close(self) -> None:
        with self.lock:
            self.connection.close()


class _Pool(Generic[L]):
    """Connections handed out one caller each, the first free one first."""

    def __init__(self, lanes: list[L]) -> None:
        self.lanes = lanes
        self._free: queue.SimpleQueue[L] = queue.SimpleQueue()
        for lane in lanes:
            self._free.put(lane)

    @contextmanager
    def lane(self) -> Iterator[L]:
        found = self._free.get()
        try:
            yield found
        finally:
            self._free.put(found)


class ServerStore:
    """A ClickHouse server over the native protocol (clickhouse-driver)."""

    def __init__(self, url: str, read_limit_s: float = READ_LIMIT_S) -> None:
        from clickhouse_driver import Client

        parts = urlsplit(url)
        self.database = (parts.path or "/").strip("/") or schema.DATABASE
        self.read_limit_s = read_limit_s
        secure = parts.scheme == "clickhouses"
        port = parts.port or (9440 if secure else 9000)
        self.address = f"{parts.hostname}:{port}"  # for messages: no password

        def client(**settings: Any) -> Any:
            return Client(
                parts.hostname or "127.0.0.1",
                port=port,
                user=unquote(parts.username or "default"),
                password=unquote(parts.password or ""),
                secure=secure,
                compression=True,
                connect_timeout=5,
                send_receive_timeout=60,
                settings={"server_side_params": True, **settings},
            )

        self._writer = (client(), threading.Lock())
        self._inserters = _Pool([(client(), threading.Lock()) for _ in range(INSERT_CONNECTIONS)])
        self._readers = _Pool(
            [
                (client(max_execution_time=read_limit_s), threading.Lock())
                for _ in range(READ_CONNECTIONS)
            ]
        )
        self._dedup_tokens: bool | None = None

    def command(self, sql: str) -> None:
        self._execute(self._writer, sql)

    def select(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        with self._readers.lane() as lane:
            return self._rows(lane, sql, params)

    def check(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        return self._rows(self._writer, sql, params)

    def _rows(self, lane: Any, sql: str, params: Mapping[str, Any] | None) -> list[Row]:
        rows, columns = self._execute(lane, sql, dict(params or {}), with_column_types=True)
        names = [c[0] for c in columns]
        return [dict(zip(names, row, strict=True)) for row in rows]

    def insert(self, table: str, rows: Sequence[Row], dedup_token: str) -> None:
        self._insert_on(self._writer, table, rows, dedup_token)

    def _insert_on(self, lane: Any, table: str, rows: Sequence[Row], dedup_token: str) -> None:
        if not rows:
            return
        names = list(rows[0])
        columns = [[r[n] for r in rows] for n in names]  # sent as native column blocks
        settings = {"insert_deduplication_token": dedup_token} if self._takes_tokens() else {}
        self._execute(
            lane,
            f"INSERT INTO {self.database}.{table} ({', '.join(names)}) VALUES",
            columns,
            settings=settings,
            columnar=True,
        )

    def insert_lines(self, table: str, body: bytes, dedup_token: str) -> None:
        # The native protocol takes columns, not text: the lines become rows here.
        timed = schema.DATETIME_COLUMNS.get(table, ())
        rows = []
        for line in body.splitlines():
            row = from_json(line)
            for name in timed:
                row[name] = datetime.fromisoformat(row[name])
            rows.append(row)
        with self._inserters.lane() as lane:
            self._insert_on(lane, table, rows, dedup_token)

    def close(self) -> None:
        for client, lock in (*self._readers.lanes, *self._inserters.lanes, self._writer):
            with lock:
                client.disconnect()

    def _takes_tokens(self) -> bool:
        # Servers before 22.2 reject the setting. They cannot hold the full schema either;
        # the sink still de-duplicates retried batches by their stored Kafka offsets.
        if self._dedup_tokens is None:
            version = str(self.check("SELECT version() AS v")[0]["v"])
            self._dedup_tokens = tuple(int(p) for p in version.split(".")[:2]) >= (22, 2)
        return self._dedup_tokens

    def _execute(self, lane: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
        from clickhouse_driver.errors import Error

        client, lock = lane
        with lock:
            try:
                return client.execute(sql, *args, **kwargs)
            except (Error, OSError, EOFError) as exc:
                client.disconnect()  # the next call reconnects from scratch
                if getattr(exc, "code", None) == TIMEOUT_EXCEEDED:
                    raise timed_out(self.read_limit_s) from exc
                detail = str(exc).split("Stack trace:")[0].strip()
                raise StoreError(f"ClickHouse server {self.address}: {detail}") from exc


def ensure_schema_when_reachable(store: Store, wait_s: float = 60.0) -> None:
    """`ensure_schema`, retried with backoff while the server is unreachable."""
    deadline = time.monotonic() + wait_s
    delay = 0.5
    while True:
        try:
            ensure_schema(store)
            return
        except SchemaRefused:
            raise
        except StoreError as exc:
            if time.monotonic() + delay > deadline:
                raise StoreError(f"ClickHouse unreachable for {wait_s:.0f} s: {exc}") from exc
            log.warning("ClickHouse not reachable yet, retry in %.1f s: %s", delay, exc)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def open_store(clickhouse_url: str, chdb_path: Path, read_limit_s: float = READ_LIMIT_S) -> Store:
    """The store a settings object names: a server URL, else chdb on a local path."""
    if clickhouse_url.startswith(("clickhouse://", "clickhouses://")):
        return ServerStore(clickhouse_url, read_limit_s)
    return ChdbStore(chdb_path, read_limit_s=read_limit_s)


# chdb reads parameter values in ClickHouse's escaped text format: a backslash or a raw
# newline in a value (an order number typed by a person) would not parse, or parse wrong.
_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"})


def _escaped(value: Any) -> Any:
    return value.translate(_ESCAPES) if isinstance(value, str) else value


def _sql_token(token: str) -> str:
    return "".join(c for c in token if c.isalnum() or c in "-_:.")
