"""The one owner of the chDB connections: statements, streaming inserts and the locks.

chDB lets a process open a single data directory in its whole life, and only one
process may hold it, so exactly one `Engine` exists per server and everything else
(other processes, tests, the dashboard) goes through HTTP. A streaming insert must not
overlap another statement on its connection, so inserts have a connection of their own:
queries go on while an insert is open, and statements that change tables wait for it.
What the statements say is written elsewhere (`schema`, `batch_writes`, `datafile_sql`);
only this module touches the connections and the locks.
"""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import chdb

from .sql_template import quote_identifier, quote_string

QUERY_TIMEOUT_SECONDS = 10
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


def _escaped(value: str) -> str:
    """A query parameter's value as chDB reads it: in ClickHouse's escaped text format."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


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


class OpenInsert:
    """One insert whose rows the engine takes part by part (`Engine.open_insert`)."""

    def __init__(self, inserter: Any):
        self._inserter = inserter

    def append(self, part: bytes) -> None:
        """Hand the engine more rows: whole rows in the insert's format."""
        try:
            self._inserter.append(part)
        except Exception as exc:
            raise EngineError.from_chdb(exc) from None

    def finish(self) -> int:
        """Store the rows; the rows written, those of the views that follow included."""
        try:
            return int(self._inserter.finish().rows_written)
        except Exception as exc:
            raise EngineError.from_chdb(exc) from None


class Engine:
    """The chDB connections of one workspace, shared by every request.

    The default workspace keeps its tables in the `default` database of `data_dir/chdb`.
    Another workspace passes `database` and the same `store`: its connections open the
    one chDB folder the process may have, with sessions of their own whose current
    database is the workspace's. So its statements name their tables bare, exactly as
    the default's do, and `currentDatabase()` is that workspace's database.
    """

    def __init__(self, data_dir: Path | str, query_timeout: float = QUERY_TIMEOUT_SECONDS,
                 database: str | None = None, store: Path | None = None):
        """Open the connections.

        Args:
            data_dir: the workspace's folder (its files and the open marker).
            query_timeout: the time limit of a query, in seconds.
            database: the workspace's own database; None for the default workspace.
            store: the chDB folder; None means `data_dir/chdb`.
        """
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.database = database
        # Other workspaces open this same folder, named by this very text: chDB refuses a
        # second folder in one process, and compares the names it is given.
        self.store = store or self.data_dir / "chdb"
        try:
            self._conn = chdb.connect(str(self.store))
            # Streaming inserts have a connection of their own: while one is open, no
            # other statement may run on its connection, and queries should not wait.
            self._insert_conn = chdb.connect(str(self.store))
        except Exception as exc:
            raise EngineError(
                f"cannot open the data directory {self.data_dir}: {exc}. Is another Tinybird "
                "Local process using it?"
            ) from None
        self._lock = _SharedExclusiveLock()
        # Held by an open insert; statements that change tables take it too (first).
        self._insert_lock = threading.Lock()
        self._closed = False
        # Found at open: the last engine on this data dir never closed (kill -9, a crash,
        # power loss), so a source may hold rows its materialized targets never got.
        # `schema.apply_project` rebuilds the targets, then sets it to False.
        self._marker = self.data_dir / OPEN_MARKER
        self.recovering = self._marker.exists()
        self._marker.touch()
        if database:
            self.execute(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)}")
        for conn in (self._conn, self._insert_conn):
            self._open_session(conn, query_timeout)

    def _open_session(self, conn: Any, query_timeout: float) -> None:
        """The same session on both connections: the database and the settings."""
        statements = [f"USE {quote_identifier(self.database)}"] if self.database else []
        statements += [
            # Tinybird stops endpoint queries at a time limit (408); bulk loads lift it
            # per statement.
            f"SET max_execution_time = {float(query_timeout)}",
            "SET output_format_json_quote_64bit_integers = 0",
            "SET output_format_json_quote_denormals = 0",
            # `row_checks.encode` never writes half a UTF-16 pair (`"\ud800"`); should a
            # bad escape reach the engine anyway, it is kept rather than failing the
            # whole insert.
            "SET input_format_json_throw_on_bad_escape_sequence = 0",
        ]
        for sql in statements:
            try:
                conn.query(sql, "CSV")
            except Exception as exc:
                raise EngineError.from_chdb(exc) from None

    # -- statements ---------------------------------------------------------------------
    def execute(self, sql: str) -> None:
        """Run a statement that may change tables: no query and no insert runs meanwhile."""
        with self._insert_lock, self._lock.exclusive():
            self._run(sql, "CSV")

    @contextmanager
    def exclusive(self) -> Iterator[Callable[[str], None]]:
        """Hold the engine alone for several statements; yields the function that runs one.

        No query or insert runs between them, so none sees the tables half changed. Run
        them only through what it yields: `execute` would wait for this very hold.
        """
        def run(sql: str) -> None:
            self._run(sql, "CSV")

        with self._insert_lock, self._lock.exclusive():
            yield run

    def query(self, sql: str, fmt: str = "JSON") -> bytes:
        """Run a read query; the engine's own output bytes (`FORMAT JSON` etc.)."""
        with self._lock.shared():
            return self._run(sql, fmt)

    def query_stats(self, sql: str, fmt: str = "JSON",
                    params: Mapping[str, str] | None = None) -> tuple[bytes, int, int]:
        """`query`, with the rows and bytes the engine read for it.

        Args:
            sql: the query; it may hold query parameters (`{name:String}`).
            fmt: the output format.
            params: the values of those parameters, as plain text.
        """
        with self._lock.shared():
            result = self._result(sql, fmt, params)
            if result is None:
                return b"", 0, 0
            # `rows_read()` counts the rows of the answer; the storage figures are what
            # the engine read, which is what Tinybird reports.
            return (result.bytes(), int(result.storage_rows_read()),
                    int(result.storage_bytes_read()))

    def _run(self, sql: str, fmt: str, params: Mapping[str, str] | None = None) -> bytes:
        result = self._result(sql, fmt, params)
        return result.bytes() if result is not None else b""

    def _result(self, sql: str, fmt: str, params: Mapping[str, str] | None = None) -> Any:
        """chDB's result object for `sql`; an engine failure becomes an `EngineError`."""
        if self._closed:
            raise EngineError("the engine is closed")
        try:
            if params:
                return self._conn.query(sql, fmt, params={
                    name: _escaped(value) for name, value in params.items()})
            return self._conn.query(sql, fmt)
        except Exception as exc:
            raise EngineError.from_chdb(exc) from None

    def scalar(self, sql: str) -> str:
        return self.query(sql, "TabSeparated").decode().strip()

    def parse(self, sql: str, placeholders: Iterable[str] = ()) -> tuple[str, str]:
        """ClickHouse's reading of `sql`, run nowhere: (formatted text, `EXPLAIN AST`).

        The connection runs every statement of a multi-statement text, `EXPLAIN AST
        SELECT 1; DROP TABLE t` included, so the text first goes in as a string literal
        to `formatQuery`, which parses exactly one statement and refuses anything after
        it; only then is it safe to put the text itself after `EXPLAIN AST`.
        `EXPLAIN AST` needs a value for each query parameter: the names in
        `placeholders` get an empty text, so the tree never depends on a request.
        """
        formatted = self.query(f"SELECT formatQuery({quote_string(sql)})",
                               "TabSeparatedRaw").decode()
        with self._lock.shared():
            ast = self._run(f"EXPLAIN AST {sql}", "TabSeparatedRaw",
                            dict.fromkeys(placeholders, ""))
        return formatted, ast.decode()

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

    def drop_database(self, name: str) -> None:
        """Remove another workspace's database and every table in it."""
        self.execute(f"DROP DATABASE IF EXISTS {quote_identifier(name)} SYNC")

    def total_bytes(self, table: str) -> int:
        return int(self.scalar(
            "SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND "
            f"database = currentDatabase() AND table = {quote_string(table)}") or 0)

    # -- streaming inserts ---------------------------------------------------------------
    @contextmanager
    def open_insert(self, statement: str, fmt: str) -> Iterator[OpenInsert]:
        """Hold the engine for one insert whose rows come in parts (`OpenInsert`).

        The engine reads each part in threads of its own as it comes, so the caller can
        check the next part meanwhile. Queries go on meanwhile (the insert has its own
        connection); other inserts and statements that change tables wait for the block
        to end. Rows are stored only by `finish`; leaving the block without it stores
        nothing.

        Args:
            statement: an `INSERT INTO t`, with its columns and settings if any.
            fmt: the format of the parts (`JSONEachRow`, `LineAsString`...).
        """
        with self._insert_lock:
            if self._closed:
                raise EngineError("the engine is closed")
            try:
                inserter = self._insert_conn.send_insert(statement, fmt)
            except Exception as exc:
                raise EngineError.from_chdb(exc) from None
            with inserter:
                yield OpenInsert(inserter)

    def insert_raw(self, statement: str, fmt: str, payload: bytes | list[bytes]) -> int:
        """Stream `payload` into `statement`; the rows written (its views' rows included).

        Args:
            statement: an `INSERT INTO t`, with its columns and settings if any.
            fmt: the format of `payload` (`JSONEachRow`, `LineAsString`...).
            payload: the rows, as bytes in that format, whole or in parts that each end
                with a row (the parts are not joined into one copy first).

        Returns:
            The rows written, those of the views that follow the table included.
        """
        with self.open_insert(statement, fmt) as insert:
            for part in [payload] if isinstance(payload, bytes) else payload:
                insert.append(part)
            return insert.finish()

    def close(self) -> None:
        with self._insert_lock, self._lock.exclusive():
            if not self._closed:
                self._closed = True
                self._insert_conn.close()
                self._conn.close()
                # Every insert has finished (we hold the lock) and the engine has flushed;
                # a repair still owed (`schema.apply_project` failed first) stays owed.
                if not self.recovering:
                    self._marker.unlink(missing_ok=True)
