"""The ClickHouse store behind one interface: chdb embedded, or a server via clickhouse-driver."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from pydantic_core import to_json

from analytics.errors import SchemaRefused, StoreError
from analytics.history import schema

Row = dict[str, Any]
log = logging.getLogger(__name__)


class Store(Protocol):
    """What the sink and the queries need from ClickHouse."""

    database: str

    def command(self, sql: str) -> None: ...

    def select(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]: ...

    def insert(self, table: str, rows: Sequence[Row], dedup_token: str) -> None: ...

    def close(self) -> None: ...


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
    """The embedded engine: one process owns the data path, so calls are serialised."""

    def __init__(self, path: Path, database: str = schema.DATABASE) -> None:
        from chdb import session

        path.mkdir(parents=True, exist_ok=True)
        self.database = database
        self._lock = threading.Lock()
        try:
            self._session = session.Session(str(path))
        except Exception as exc:  # chdb raises plain errors when a path is locked
            raise StoreError(
                f"cannot open chdb at {path} (is another process using it?): {exc}"
            ) from exc

    def command(self, sql: str) -> None:
        self._run(sql, "CSV", None)

    def select(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        text = self._run(sql, "JSONEachRow", params)
        return [json.loads(line) for line in text.splitlines() if line]

    def insert(self, table: str, rows: Sequence[Row], dedup_token: str) -> None:
        if not rows:
            return
        body = "\n".join(to_json(r).decode() for r in rows)
        sql = (
            f"INSERT INTO {self.database}.{table} SETTINGS "
            f"insert_deduplication_token = '{_sql_token(dedup_token)}', "
            "date_time_input_format = 'best_effort' FORMAT JSONEachRow\n" + body
        )
        self._run(sql, "CSV", None)

    def close(self) -> None:
        with self._lock:
            self._session.close()

    def _run(self, sql: str, fmt: str, params: Mapping[str, Any] | None) -> str:
        escaped = {k: _escaped(v) for k, v in (params or {}).items()}
        with self._lock:
            try:
                result = self._session.query(sql, fmt, params=escaped)
            except Exception as exc:
                raise StoreError(f"ClickHouse (chdb) error: {exc}") from exc
        return str(result.bytes().decode()) if result is not None else ""


class ServerStore:
    """A ClickHouse server over the native protocol (clickhouse-driver)."""

    def __init__(self, url: str) -> None:
        from clickhouse_driver import Client

        parts = urlsplit(url)
        self.database = (parts.path or "/").strip("/") or schema.DATABASE
        secure = parts.scheme == "clickhouses"
        port = parts.port or (9440 if secure else 9000)
        self.address = f"{parts.hostname}:{port}"  # for messages: no password
        self._client = Client(
            parts.hostname or "127.0.0.1",
            port=port,
            user=unquote(parts.username or "default"),
            password=unquote(parts.password or ""),
            secure=secure,
            compression=True,
            connect_timeout=5,
            send_receive_timeout=60,
            settings={"server_side_params": True},
        )
        self._lock = threading.Lock()
        self._dedup_tokens: bool | None = None

    def command(self, sql: str) -> None:
        self._execute(sql)

    def select(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        rows, columns = self._execute(sql, dict(params or {}), with_column_types=True)
        names = [c[0] for c in columns]
        return [dict(zip(names, row, strict=True)) for row in rows]

    def insert(self, table: str, rows: Sequence[Row], dedup_token: str) -> None:
        if not rows:
            return
        names = list(rows[0])
        columns = [[r[n] for r in rows] for n in names]  # sent as native column blocks
        settings = {"insert_deduplication_token": dedup_token} if self._takes_tokens() else {}
        self._execute(
            f"INSERT INTO {self.database}.{table} ({', '.join(names)}) VALUES",
            columns,
            settings=settings,
            columnar=True,
        )

    def close(self) -> None:
        self._client.disconnect()

    def _takes_tokens(self) -> bool:
        # Servers before 22.2 reject the setting. They cannot hold the full schema either;
        # the sink still de-duplicates retried batches by their stored Kafka offsets.
        if self._dedup_tokens is None:
            version = str(self.select("SELECT version() AS v")[0]["v"])
            self._dedup_tokens = tuple(int(p) for p in version.split(".")[:2]) >= (22, 2)
        return self._dedup_tokens

    def _execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        from clickhouse_driver.errors import Error

        with self._lock:
            try:
                return self._client.execute(sql, *args, **kwargs)
            except (Error, OSError, EOFError) as exc:
                self._client.disconnect()  # the next call reconnects from scratch
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


def open_store(clickhouse_url: str, chdb_path: Path) -> Store:
    """The store a settings object names: a server URL, else chdb on a local path."""
    if clickhouse_url.startswith(("clickhouse://", "clickhouses://")):
        return ServerStore(clickhouse_url)
    return ChdbStore(chdb_path)


# chdb reads parameter values in ClickHouse's escaped text format: a backslash or a raw
# newline in a value (an order number typed by a person) would not parse, or parse wrong.
_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"})


def _escaped(value: Any) -> Any:
    return value.translate(_ESCAPES) if isinstance(value, str) else value


def _sql_token(token: str) -> str:
    return "".join(c for c in token if c.isalnum() or c in "-_:.")
