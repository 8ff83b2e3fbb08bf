"""The one owner of the chDB connection: DDL from datafiles, inserts and queries.

chDB lets a process open a single data directory in its whole life, and only one
process may hold it, so exactly one `Engine` exists per server and everything else
(other processes, tests, the dashboard) goes through HTTP. A streaming insert must not
overlap another statement on the connection, so inserts take the lock exclusively
while queries share it.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import chdb

from .batches import CheckedBatch
from .datafiles import Datasource
from .quarantine import (
    REPEAT,
    compact_rows_name,
    rejected_lines_names,
    rejected_rows_name,
    storage_name,
)
from .row_checks import QuarantinedRow, encode
from .sift import (
    KEPT,
    check_sql,
    flush_sql,
    objects_sql,
    read_sql,
    sift_names,
    sift_tables,
)
from .sql_template import quote_identifier, quote_string

QUERY_TIMEOUT_SECONDS = 10
# The pieces a sifted body goes to the engine in (`Engine.sift_lines`).
SIFT_PIECE_BYTES = 1 << 19
# Present in the data dir from the moment an Engine opens it until it closes cleanly.
OPEN_MARKER = "engine-open"

_ERROR_CODE = re.compile(
    r"Code: (\d+)\. DB::Exception: (.*?)(?:\s*\(([A-Z_]+)\))?(?:\s*\(version [^)]*\))?\s*$", re.S)


class EngineError(Exception):
    """An error raised by ClickHouse: its numeric code, name and message."""

    def __init__(self, message: str, code: int = 0, name: str = ""):
        super().__init__(message)
        self.message, self.code, self.name = message, code, name

    @classmethod
    def from_chdb(cls, exc: Exception) -> EngineError:
        text = str(exc).strip()
        m = _ERROR_CODE.search(text)
        if not m:
            return cls(text)
        return cls(m.group(2).strip(), int(m.group(1)), m.group(3) or "")

    @property
    def is_timeout(self) -> bool:
        return self.name == "TIMEOUT_EXCEEDED" or self.code == 159


class _SharedExclusiveLock:
    """Many readers or one writer."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._readers:
                self._cond.wait()
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _lines_in(data: bytes) -> int:
    """The rows `LineAsString` reads from `data`: one per line, the last one unended too."""
    return data.count(b"\n") + (not data.endswith(b"\n"))


@dataclass
class InsertResult:
    successful_rows: int
    quarantined_rows: int
    import_id: str


class Engine:
    def __init__(self, data_dir: Path | str, query_timeout: float = QUERY_TIMEOUT_SECONDS):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = chdb.connect(str(self.data_dir / "chdb"))
        except Exception as exc:
            raise EngineError(
                f"cannot open the data directory {self.data_dir}: {exc}. Is another Tinybird "
                "Local process using it?"
            ) from None
        self._lock = _SharedExclusiveLock()
        # One sift at a time: its tables are shared (`sift_lines`).
        self._sift_lock = threading.Lock()
        self._closed = False
        # Found at open: the last engine on this data dir never closed (kill -9, a crash,
        # power loss), so a source may hold rows its materialized targets never got.
        # `schema.apply_project` rebuilds the targets, then sets it to False.
        self._marker = self.data_dir / OPEN_MARKER
        self.recovering = self._marker.exists()
        self._marker.touch()
        # Tinybird stops endpoint queries after 10 s (408); bulk loads lift it per statement.
        self.execute(f"SET max_execution_time = {float(query_timeout)}")
        self.execute("SET output_format_json_quote_64bit_integers = 0")
        self.execute("SET output_format_json_quote_denormals = 0")
        # `row_checks.encode` never writes half a UTF-16 pair (`"\ud800"`); should a bad escape
        # reach the engine anyway, it is kept rather than failing the whole insert.
        self.execute("SET input_format_json_throw_on_bad_escape_sequence = 0")

    # -- statements ---------------------------------------------------------------------
    def execute(self, sql: str) -> None:
        with self._lock.exclusive():
            self._run(sql, "CSV")

    @contextmanager
    def exclusive(self) -> Iterator[Callable[[str], None]]:
        """Hold the engine alone for several statements; yields the function that runs one.

        No query or insert runs between them, so none sees the tables half changed. Run
        them only through what it yields: `execute` would wait for this very hold.
        """
        def run(sql: str) -> None:
            self._run(sql, "CSV")

        with self._lock.exclusive():
            yield run

    def query(self, sql: str, fmt: str = "JSON") -> bytes:
        """Run a read query; the engine's own output bytes (`FORMAT JSON` etc.)."""
        with self._lock.shared():
            return self._run(sql, fmt)

    def query_stats(self, sql: str, fmt: str = "JSON") -> tuple[bytes, int, int]:
        """`query`, with the rows and bytes the engine read for it."""
        with self._lock.shared():
            result = self._result(sql, fmt)
            if result is None:
                return b"", 0, 0
            return result.bytes(), int(result.rows_read()), int(result.bytes_read())

    def _run(self, sql: str, fmt: str) -> bytes:
        result = self._result(sql, fmt)
        return result.bytes() if result is not None else b""

    def _result(self, sql: str, fmt: str) -> Any:
        """chDB's result object for `sql`; an engine failure becomes an `EngineError`."""
        if self._closed:
            raise EngineError("the engine is closed")
        try:
            return self._conn.query(sql, fmt)
        except Exception as exc:
            raise EngineError.from_chdb(exc) from None

    def scalar(self, sql: str) -> str:
        return self.query(sql, "TabSeparated").decode().strip()

    def parse(self, sql: str) -> tuple[str, str]:
        """ClickHouse's reading of `sql`, run nowhere: (formatted text, `EXPLAIN AST`).

        The connection runs every statement of a multi-statement text, `EXPLAIN AST
        SELECT 1; DROP TABLE t` included, so the text first goes in as a string literal
        to `formatQuery`, which parses exactly one statement and refuses anything after
        it; only then is it safe to put the text itself after `EXPLAIN AST`.
        """
        formatted = self.query(f"SELECT formatQuery({quote_string(sql)})",
                               "TabSeparatedRaw").decode()
        return formatted, self.query(f"EXPLAIN AST {sql}", "TabSeparatedRaw").decode()

    # -- table facts ---------------------------------------------------------------------
    def table_exists(self, name: str) -> bool:
        escaped = name.replace("\\", "\\\\").replace("'", "\\'")
        return self.scalar(
            f"SELECT count() FROM system.tables WHERE database = currentDatabase() "
            f"AND name = '{escaped}'"
        ) == "1"

    def row_count(self, table: str) -> int:
        return int(self.scalar(f"SELECT count() FROM {quote_identifier(table)}"))

    def truncate(self, name: str) -> None:
        self.execute(f"TRUNCATE TABLE {quote_identifier(name)}")

    def drop_table(self, name: str) -> None:
        self.execute(f"DROP TABLE IF EXISTS {quote_identifier(name)}")

    def total_bytes(self, table: str) -> int:
        return int(self.scalar(
            "SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND "
            f"database = currentDatabase() AND table = {quote_string(table)}") or 0)

    # -- ingestion ----------------------------------------------------------------------
    def insert_batch(self, datasource: Datasource, batch: CheckedBatch,
                     import_id: str | None = None, table: str | None = None) -> InsertResult:
        """Write a checked batch into `datasource` (or `table`, a staging copy of it); the
        rows the engine refuses, and the batch's quarantined ones, go to its quarantine."""
        import_id = import_id or str(uuid.uuid4())
        table = table or datasource.name
        quarantined = list(batch.quarantined)
        inserted = 0
        if batch.row_count:
            try:
                self._insert_ndjson(table, bytes(batch.ndjson))
                inserted = batch.row_count
            except EngineError:
                # The engine refused the batch (a type we do not check in Python): find
                # the rows it refuses one by one, so the good ones still land.
                for row in batch.rows:
                    try:
                        self._insert_ndjson(table, row + b"\n")
                        inserted += 1
                    except EngineError as exc:
                        values = json.loads(row)
                        quarantined.append(QuarantinedRow(
                            {c.name: _text(values.get(c.name)) for c in datasource.columns},
                            ["__row__"], [exc.message[:500]]))
        if quarantined:
            self._quarantine(datasource, quarantined, import_id)
        if batch.compact_count or batch.bare_count:
            bare = b"".join(row[:-1] + b',"%s":%d}\n' % (REPEAT.encode(), count)
                            for row, count in batch.bare.items())
            self._insert_quarantine(compact_rows_name(datasource), bytes(batch.compact) + bare,
                                    import_id)
        rejected = self._quarantine_lines(datasource, batch.rejected, import_id) \
            if batch.rejected else 0
        if batch.broken_count:
            self._insert(f"INSERT INTO {quote_identifier(rejected_rows_name(datasource))} "
                         f"(line) SETTINGS log_comment = {quote_string(import_id)}",
                         "LineAsString", bytes(batch.broken))
        return InsertResult(inserted, len(quarantined) + batch.compact_count + batch.bare_count
                            + batch.broken_count + batch.sifted_count + rejected, import_id)

    def _insert_quarantine(self, table: str, payload: bytes, import_id: str) -> None:
        """Quarantine rows as JSON lines; the engine adds the import id and the time."""
        self._insert(f"INSERT INTO {quote_identifier(table)} "
                     f"SETTINGS log_comment = {quote_string(import_id)}", "JSONEachRow", payload)

    def _quarantine_lines(self, ds: Datasource, window: bytes, import_id: str) -> int:
        """Hand a piece of the body to the rejected-lines view; how many it quarantined.

        The engine counts them: the insert writes one row per line of the piece into the
        Null table and one per rejected line into the quarantine, so no Python runs per
        line, not even to count (a piece of 500,000 one-byte lines costs one call).
        """
        lines, _ = rejected_lines_names(ds)
        statement = (f"INSERT INTO {quote_identifier(lines)} "
                     f"SETTINGS log_comment = {quote_string(import_id)}")
        return self._insert(statement, "LineAsString", window) - _lines_in(window)

    def sift_lines(self, ds: Datasource, import_id: str, lines: bytes, start: int = 0,
                   end: int | None = None) -> tuple[bytes, int]:
        """Quarantine the lines (a body, as sent, from `start` to `end`, which follows a
        newline or ends the body) that cannot be events or are not JSON, and those the
        engine checks and finds bad (see `sift`); the object lines left for the Python
        checks, one per line, and how many were quarantined.

        The body goes in pieces cut after a newline: the engine's memory follows the
        lines of one insert (it groups them). Each statement holds the engine on its own,
        so queries are not kept waiting for the whole body.
        """
        sift, sifted = (quote_identifier(n) for n in sift_names(ds))
        checked = False
        with self._sift_lock:
            try:
                stop = len(lines) if end is None else end
                while start < stop:
                    cut = lines.find(b"\n", start + SIFT_PIECE_BYTES, stop)
                    cut = stop if cut < 0 else cut + 1
                    self._insert(f"INSERT INTO {sift}", "LineAsString", lines[start:cut])
                    start = cut
                for statement in read_sql(ds, import_id):
                    self.execute(statement)
                # The check costs 0.2 s to plan: none for a body without JSON objects.
                if int(self.query(objects_sql(ds), "TSV")):
                    checked = True
                    self.execute(check_sql(ds, import_id))
                quarantined = int(self.query(
                    f"SELECT sumIf({REPEAT}, outcome != {KEPT}) FROM {sifted}", "TSV"))
                kept = self.query(f"SELECT line FROM {sifted} ARRAY JOIN range({REPEAT}) "
                                  f"WHERE outcome = {KEPT}", "TabSeparatedRaw")
            finally:
                if checked:
                    self.execute(flush_sql(ds))
                for table in sift_tables(ds):
                    self.execute(f"TRUNCATE TABLE {quote_identifier(table)}")
        return kept, quarantined

    def insert_raw(self, statement: str, fmt: str, payload: bytes) -> None:
        """`statement` (an `INSERT INTO t`) fed with `payload` in the format `fmt`."""
        self._insert(statement, fmt, payload)

    def _insert_ndjson(self, table: str, payload: bytes) -> None:
        self._insert(f"INSERT INTO {quote_identifier(table)}", "JSONEachRow", payload)

    def _insert(self, statement: str, fmt: str, payload: bytes) -> int:
        """Stream `payload` into `statement`; the rows written (its views' rows included)."""
        with self._lock.exclusive():
            if self._closed:
                raise EngineError("the engine is closed")
            try:
                with self._conn.send_insert(statement, fmt) as inserter:
                    inserter.append(payload)
                    return int(inserter.finish().rows_written)
            except Exception as exc:
                raise EngineError.from_chdb(exc) from None

    def _quarantine(self, ds: Datasource, rows: list[QuarantinedRow], import_id: str) -> None:
        batch = CheckedBatch()
        for row in rows:
            batch.add_row(encode({**row.values, "c__error_column": row.error_columns,
                                  "c__error": row.errors}))
        self._insert_quarantine(storage_name(ds), bytes(batch.ndjson), import_id)

    def close(self) -> None:
        with self._lock.exclusive():
            if not self._closed:
                self._closed = True
                self._conn.close()
                # Every insert has finished (we hold the lock) and the engine has flushed;
                # a repair still owed (apply_project failed first) stays owed.
                if not self.recovering:
                    self._marker.unlink(missing_ok=True)
