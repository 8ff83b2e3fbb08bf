"""Tinybird's Service Data Sources: `tinybird.pipe_stats_rt` and `tinybird.datasources_ops_log`.

Every pipe endpoint request adds a row to `pipe_stats_rt`. Every operation on a data
source (an Events API append, a create, a truncate...) adds one to
`datasources_ops_log`. The columns are the ones Tinybird documents
(https://www.tinybird.co/docs/forward/monitoring/service-datasources). The tables are
in a database of their own, `tinybird`, which the SQL guard opens for these two names
only.

Recording a request must not slow it down. So `record` only appends a row to a list in
memory. A background thread writes the waiting rows every `FLUSH_INTERVAL_SECONDS`, or
sooner when a batch is full, with one INSERT per table. A read of `tinybird.*` through
the Query API writes the waiting rows first, so a client sees its own requests.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from typing import Any, Mapping

from .engine import Engine, EngineError
from .sql_guard import SERVICE_DATABASE
from .sql_template import quote_identifier

log = logging.getLogger("tinybird_local")

FLUSH_INTERVAL_SECONDS = 1.0
MAX_BATCH_ROWS = 5000
# Rows kept while the engine refuses them (a closed engine at shutdown): never unbounded.
MAX_PENDING_ROWS = 100_000

PIPE_STATS_TABLE = "pipe_stats_rt"
OPS_LOG_TABLE = "datasources_ops_log"

# `{table}` is the table's full name: `tinybird.pipe_stats_rt` for the default workspace.
PIPE_STATS_SQL = """CREATE TABLE IF NOT EXISTS {table} (
  start_datetime DateTime,
  pipe_id String,
  pipe_name String,
  duration Float32,
  read_bytes UInt64,
  read_rows UInt64,
  result_rows UInt64,
  url Nullable(String),
  error UInt8,
  request_id String,
  token String,
  token_name String,
  status_code Int32,
  method String,
  parameters Map(String, String),
  release String,
  user_agent Nullable(String),
  resource_tags Array(String),
  cpu_time Float32
) ENGINE = MergeTree
PARTITION BY toDate(start_datetime)
ORDER BY (pipe_id, start_datetime)
TTL start_datetime + INTERVAL 7 DAY"""

OPS_LOG_SQL = """CREATE TABLE IF NOT EXISTS {table} (
  timestamp DateTime,
  event_type String,
  datasource_id String,
  datasource_name String,
  result String,
  elapsed_time Float32,
  error Nullable(String),
  request_id String,
  import_id Nullable(String),
  job_id Nullable(String),
  rows Nullable(UInt64),
  rows_quarantine Nullable(UInt64),
  blocks_ids Array(String),
  `Options.Names` Array(String),
  `Options.Values` Array(String),
  read_rows UInt64,
  read_bytes UInt64,
  written_rows UInt64,
  written_bytes UInt64,
  written_rows_quarantine UInt64,
  written_bytes_quarantine UInt64,
  operation_id String,
  release String,
  resource_tags Array(String),
  cpu_time Float32
) ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (datasource_id, timestamp)"""


def _now() -> str:
    """The time now in UTC, as a DateTime column takes it."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


class _Buffer:
    """Rows for one table, written in batches by the owner's flusher."""

    def __init__(self, table: str):
        self.table = table
        self.rows: list[bytes] = []

    def insert_sql(self) -> str:
        """The INSERT statement the rows are sent with."""
        database, _, name = self.table.partition(".")
        return f"INSERT INTO {quote_identifier(database)}.{quote_identifier(name)}"


class ServiceLog:
    """Both service tables and their writer thread; one per server (`state.service_log`)."""

    def __init__(self, engine: Engine, datasource_ids: Mapping[str, str] | None = None,
                 interval: float = FLUSH_INTERVAL_SECONDS, database: str = SERVICE_DATABASE):
        """Make both tables if missing and start the writer thread.

        Args:
            engine: the engine the tables live in.
            datasource_ids: data source name to id; read on every ops log row, so
                names added later are found.
            interval: seconds between writes.
            database: the database of the two tables. Only the default workspace's are
                in `tinybird`, where queries may read them; another workspace's rows go
                to a database of its own, so no workspace sees another's requests.
        """
        self.engine = engine
        engine.execute(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)}")
        pipe_stats, ops = f"{database}.{PIPE_STATS_TABLE}", f"{database}.{OPS_LOG_TABLE}"
        engine.execute(PIPE_STATS_SQL.format(table=pipe_stats))
        engine.execute(OPS_LOG_SQL.format(table=ops))
        self._pipe_stats = _Buffer(pipe_stats)
        self._ops = _Buffer(ops)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._interval = interval
        self.pipe_stats = PipeStats(self)
        self.ops_log = OpsLog(self, datasource_ids or {})
        self._thread = threading.Thread(target=self._run, name="service-log", daemon=True)
        self._thread.start()

    def _add(self, buffer: _Buffer, row: dict[str, Any]) -> None:
        """Queue one row; wake the writer when a batch is full."""
        line = json.dumps(row, separators=(",", ":"), default=str).encode()
        with self._lock:
            if len(buffer.rows) >= MAX_PENDING_ROWS:
                return  # the writer cannot keep up or the engine is gone: drop, never grow
            buffer.rows.append(line)
            full = len(buffer.rows) >= MAX_BATCH_ROWS
        if full:
            self._wake.set()

    def flush(self) -> None:
        """Write every pending row now (the writer thread calls it; so do reads)."""
        with self._flush_lock:
            for buffer in (self._pipe_stats, self._ops):
                with self._lock:
                    rows, buffer.rows = buffer.rows, []
                if not rows:
                    continue
                try:
                    self.engine.insert_raw(buffer.insert_sql(), "JSONEachRow",
                                        b"\n".join(rows) + b"\n")
                except EngineError as exc:
                    log.warning("service log: %d rows for %s not written: %s", len(rows),
                                buffer.table, exc.message[:200])

    def _run(self) -> None:
        """The writer thread: write the waiting rows every interval, until closed."""
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            self.flush()

    def close(self) -> None:
        """Stop the writer and write what is left (before the engine closes)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self.flush()


class PipeStats:
    """`tinybird.pipe_stats_rt`: one row per pipe endpoint request."""

    def __init__(self, owner: ServiceLog):
        self._owner = owner

    def record(self, *, pipe_id: str, pipe_name: str, started: float, duration: float,
               status_code: int, request_id: str, url: str, method: str,
               parameters: Mapping[str, str], token_id: str = "", token_name: str = "",
               read_rows: int = 0, read_bytes: int = 0, result_rows: int = 0,
               user_agent: str | None = None) -> None:
        """Queue one request's row; it is written later, in a batch.

        Args:
            pipe_id: the pipe's id.
            pipe_name: the pipe's name.
            started: when the request began, in Unix seconds.
            duration: how long it took, in seconds.
            status_code: the HTTP status answered; 400 or more counts as an error.
            request_id: the request's X-Request-ID.
            url: the request's path and query, without the token.
            method: the HTTP method.
            parameters: the request's parameters, without the token.
            token_id: the id of the token used (`token` column).
            token_name: the token's name.
            read_rows: rows the query read.
            read_bytes: bytes the query read.
            result_rows: rows in the answer.
            user_agent: the request's User-Agent, if any.
        """
        self._owner._add(self._owner._pipe_stats, {
            "start_datetime": dt.datetime.fromtimestamp(started, dt.UTC).strftime(
                "%Y-%m-%d %H:%M:%S"),
            "pipe_id": pipe_id, "pipe_name": pipe_name, "duration": round(duration, 6),
            "read_bytes": read_bytes, "read_rows": read_rows, "result_rows": result_rows,
            "url": url, "error": int(status_code >= 400), "request_id": request_id,
            "token": token_id, "token_name": token_name, "status_code": status_code,
            "method": method, "parameters": dict(parameters), "release": "",
            "user_agent": user_agent, "resource_tags": [], "cpu_time": 0.0,
        })


class OpsLog:
    """`tinybird.datasources_ops_log`: one row per operation on a datasource."""

    def __init__(self, owner: ServiceLog, datasource_ids: Mapping[str, str]):
        self._owner = owner
        self._ids = datasource_ids

    def record(self, event_type: str, datasource: str, *, rows: int | None = None,
               quarantined: int | None = None, error: str | None = None,
               elapsed: float = 0.0, import_id: str | None = None, request_id: str = "",
               job_id: str | None = None, options: Mapping[str, str] | None = None) -> None:
        """Queue one operation's row; it is written later, in a batch.

        Args:
            event_type: the operation as Tinybird names it: `create`, `append`,
                `append-hfi` (the Events API), `replace`, `truncate`, `delete_data`,
                `rename`, `delete`...
            datasource: the data source's name.
            rows: rows written, if known.
            quarantined: rows sent to quarantine, if known.
            error: the error message; None when the operation succeeded. The `result`
                column is "ok" or "error" accordingly.
            elapsed: seconds the operation took.
            import_id: the import's id, if any.
            request_id: the request's X-Request-ID.
            job_id: the job's id, if any.
            options: the operation's options, as names and values.
        """
        self._owner._add(self._owner._ops, {
            "timestamp": _now(), "event_type": event_type,
            "datasource_id": self._ids.get(datasource, datasource),
            "datasource_name": datasource, "result": "error" if error else "ok",
            "elapsed_time": round(elapsed, 6), "error": error, "request_id": request_id,
            "import_id": import_id, "job_id": job_id, "rows": rows,
            "rows_quarantine": quarantined, "blocks_ids": [],
            "Options.Names": list((options or {}).keys()),
            "Options.Values": [str(v) for v in (options or {}).values()],
            "read_rows": 0, "read_bytes": 0, "written_rows": rows or 0, "written_bytes": 0,
            "written_rows_quarantine": quarantined or 0, "written_bytes_quarantine": 0,
            "operation_id": request_id or import_id or "", "release": "",
            "resource_tags": [], "cpu_time": 0.0,
        })


def elapsed_since(started: float) -> float:
    """Seconds since `started`, a `time.perf_counter()` reading."""
    return time.perf_counter() - started
