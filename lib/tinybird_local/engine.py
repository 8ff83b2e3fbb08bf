"""The one owner of the chDB connection: DDL from datafiles, inserts and queries.

chDB lets a process open a single data directory in its whole life, and only one
process may hold it, so exactly one `Engine` exists per server and everything else
(other processes, tests, the dashboard) goes through HTTP. A streaming insert must not
overlap another statement on the connection, so inserts take the lock exclusively
while queries share it.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import chdb

from .batches import CheckedBatch
from .datafile_sql import NO_TIME_LIMIT, create_table_sql, pipe_sql
from .datafiles import Datasource, Pipe, Project
from .quarantine import (
    FILLED_COLUMNS,
    REPEAT,
    compact_rows_name,
    rejected_lines_names,
    rejected_lines_sql,
    rejected_rows_name,
    storage_name,
    storage_sql,
    view_name,
    view_sql,
)
from .row_checks import QuarantinedRow, encode
from .sift import (
    KEPT,
    check_sql,
    flush_sql,
    objects_sql,
    read_sql,
    sift_names,
    sift_sql,
    sift_tables,
)
from .sql_template import quote_identifier, quote_string

QUERY_TIMEOUT_SECONDS = 10
BACKFILLS_TABLE = "`_tb_local_backfills`"
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

    def table_exists(self, name: str) -> bool:
        escaped = name.replace("\\", "\\\\").replace("'", "\\'")
        return self.scalar(
            f"SELECT count() FROM system.tables WHERE database = currentDatabase() "
            f"AND name = '{escaped}'"
        ) == "1"

    def row_count(self, table: str) -> int:
        return int(self.scalar(f"SELECT count() FROM {quote_identifier(table)}"))

    # -- schema -------------------------------------------------------------------------
    def apply_project(self, project: Project) -> None:
        """Create what the datafiles describe; existing tables and their rows are kept."""
        for ds in project.datasources.values():
            self.execute(create_table_sql(ds))
            self._ensure_quarantine(ds)
        self.execute(f"CREATE TABLE IF NOT EXISTS {BACKFILLS_TABLE} (view String, sql_hash String, "
                     "done DateTime DEFAULT now()) ENGINE = ReplacingMergeTree ORDER BY view")
        materialized = [p for p in project.pipes.values() if p.type == "materialized"]
        feeders: dict[str, int] = {}
        for pipe in materialized:
            feeders[pipe.target_datasource or ""] = feeders.get(pipe.target_datasource or "", 0) + 1
        for pipe in materialized:
            self._ensure_materialized_view(pipe, sole_feeder=feeders[pipe.target_datasource or ""]
                                           == 1)
        if self.recovering and materialized:
            self._rebuild_materialized(materialized)
        self.recovering = False

    def _ensure_quarantine(self, ds: Datasource) -> None:
        """The quarantine's storage tables, the view clients read, and the rejected-lines
        view (see `quarantine`); made again at every start, so the views are current.

        A data dir of an earlier version has `{ds}_quarantine` as a table of Tinybird's
        form: it becomes the storage table of whole rows as it is, with the defaults.
        """
        # Made by an earlier version, which expanded compact rows as they were written.
        compact = f"_tb_local_{ds.name}_compact_quarantine"
        self.execute(f"DROP VIEW IF EXISTS {quote_identifier(compact + '__mv')}")
        self.execute(f"DROP TABLE IF EXISTS {quote_identifier(compact)}")
        view, storage = view_name(ds), storage_name(ds)
        kinds = dict(json.loads(self.query(
            "SELECT name, engine FROM system.tables WHERE database = currentDatabase() AND "
            f"name IN ({quote_string(view)}, {quote_string(storage)})", "JSONCompact"))["data"])
        if kinds.get(view, "View") != "View" and storage not in kinds:
            self.execute(f"RENAME TABLE {quote_identifier(view)} TO {quote_identifier(storage)}")
        for statement in storage_sql(ds):
            self.execute(statement)
        for column in FILLED_COLUMNS:
            self.execute(f"ALTER TABLE {quote_identifier(storage)} MODIFY COLUMN {column}")
        for statement in rejected_lines_sql(ds) + sift_sql(ds):
            self.execute(statement)
        self.execute(view_sql(ds))

    def _rebuild_materialized(self, materialized: list[Pipe]) -> None:
        """After an unclean stop, make every materialized target agree with its sources.

        Why it is needed: an INSERT into a source writes the source's part and then each
        view's part into its target; every part is committed on its own (the engine has no
        transaction across tables), so a kill -9 between the two leaves rows in the source
        that the target never counted. Which inserts were cut short is not recorded
        anywhere, and the totals cannot be compared with their source in general.

        Why this is correct: the data dir holds a marker from the moment an engine opens
        it until `close()` has finished, and a clean close waits for every insert (each
        holds the exclusive lock), so no marker means every INSERT that started also
        finished into every target. A marker found at open means anything may be cut
        short, so every target is emptied and recomputed from its source, as the first
        back-fill did: target = view(source as it is now on disk), so each row in the
        source, and so each acknowledged row (an INSERT returns only once all its parts
        are committed), is counted exactly once. The marker is removed only by a clean
        close, so a crash during this rebuild is repaired again at the next start.

        A target fed from another target (a chain) is refilled by the engine itself: the
        views are in place, so inserting into the first target cascades down; only views
        on a table that is not a target are run here, or the chain would count twice.
        """
        targets = {pipe.target_datasource or "" for pipe in materialized}
        triggers: dict[str, str] = {}  # view -> the table whose inserts it follows
        listing = json.loads(self.query(
            "SELECT name, dependencies_table FROM system.tables "
            "WHERE database = currentDatabase()", "JSON"))["data"]
        for row in listing:
            for view in row["dependencies_table"]:
                triggers[view] = row["name"]
        with self._lock.exclusive():
            for target in sorted(targets):
                self._run(f"TRUNCATE TABLE {quote_identifier(target)}", "CSV")
            for pipe in materialized:
                if triggers.get(f"{pipe.name}__mv") in targets:
                    continue  # refilled by the cascade from its own source target
                self._run(f"INSERT INTO {quote_identifier(pipe.target_datasource or '')}\n"
                          f"{pipe_sql(pipe, {})}\n{NO_TIME_LIMIT}", "CSV")

    def _ensure_materialized_view(self, pipe: Pipe, sole_feeder: bool) -> None:
        """The view exists with the datafile's SQL and its target was back-filled once.

        The back-fill is recorded in the engine itself; a start that finds the view but no
        record (a crash in between, or changed SQL) empties the target and fills it again,
        so the totals are never counted twice nor left short. (A target fed by several
        views is not emptied: there a changed view's back-fill adds to what is there.)
        """
        view = quote_identifier(f"{pipe.name}__mv")
        select = pipe_sql(pipe, {})
        target = quote_identifier(pipe.target_datasource or "")
        name = quote_string(f"{pipe.name}__mv")
        sql_hash = hashlib.sha256(select.encode()).hexdigest()
        recorded = self.scalar(f"SELECT sql_hash FROM {BACKFILLS_TABLE} FINAL WHERE view = {name}")
        exists = self.table_exists(f"{pipe.name}__mv")
        if exists and recorded == sql_hash:
            return
        with self._lock.exclusive():
            if exists:
                self._run(f"DROP VIEW {view}", "CSV")
            self._run(f"CREATE MATERIALIZED VIEW {view} TO {target} AS\n{select}", "CSV")
            if sole_feeder:
                self._run(f"TRUNCATE TABLE {target}", "CSV")
            # Back-fill once, as Tinybird does when a materialized pipe is pushed.
            self._run(f"INSERT INTO {target}\n{select}\n{NO_TIME_LIMIT}", "CSV")
        self.execute(f"INSERT INTO {BACKFILLS_TABLE} (view, sql_hash) "
                     f"VALUES ({name}, '{sql_hash}')")

    # -- the Data Sources API -------------------------------------------------------------
    def create_datasource(self, ds: Datasource) -> None:
        """The tables of a data source created at run time (`POST /v0/datasources`)."""
        self.execute(create_table_sql(ds))
        self._ensure_quarantine(ds)

    def truncate(self, name: str) -> None:
        self.execute(f"TRUNCATE TABLE {quote_identifier(name)}")

    def staging_table(self, ds: Datasource) -> str:
        """An empty table shaped like `ds` with no views on it, for a replace to fill."""
        staging = f"_tb_local_{ds.name}_replace_{uuid.uuid4().hex[:12]}"
        self.execute(f"CREATE TABLE {quote_identifier(staging)} AS {quote_identifier(ds.name)}")
        return staging

    def drop_table(self, name: str) -> None:
        self.execute(f"DROP TABLE IF EXISTS {quote_identifier(name)}")

    def replace_from(self, ds: Datasource, staging: str, project: Project) -> None:
        """Make `ds` hold exactly the rows of `staging`, and its materialized targets agree.

        One exclusive hold of the engine, so no query sees the source or a target half
        replaced: the source and every target downstream of it are emptied, the staged
        rows go into the source (its views fill the targets, in cascade), and a view that
        feeds one of those targets from elsewhere is run again over its own source, as at
        its first back-fill. Then the staging table is dropped.
        """
        triggers = self._view_sources()
        materialized = [p for p in project.pipes.values() if p.type == "materialized"]
        downstream: set[str] = set()
        frontier = {ds.name}
        while frontier:
            found = {p.target_datasource or "" for p in materialized
                     if triggers.get(f"{p.name}__mv") in frontier} - downstream
            downstream |= found
            frontier = found
        with self._lock.exclusive():
            for table in [ds.name, *sorted(downstream)]:
                self._run(f"TRUNCATE TABLE {quote_identifier(table)}", "CSV")
            self._run(f"INSERT INTO {quote_identifier(ds.name)} SELECT * FROM "
                      f"{quote_identifier(staging)}\n{NO_TIME_LIMIT}", "CSV")
            for pipe in materialized:
                source = triggers.get(f"{pipe.name}__mv")
                if pipe.target_datasource in downstream and source != ds.name \
                        and source not in downstream:
                    self._run(f"INSERT INTO {quote_identifier(pipe.target_datasource or '')}\n"
                              f"{pipe_sql(pipe, {})}\n{NO_TIME_LIMIT}", "CSV")
            self._run(f"DROP TABLE IF EXISTS {quote_identifier(staging)}", "CSV")

    def _view_sources(self) -> dict[str, str]:
        """Each materialized view's source: the table whose inserts it follows."""
        listing = json.loads(self.query(
            "SELECT name, dependencies_table FROM system.tables "
            "WHERE database = currentDatabase()", "JSON"))["data"]
        return {view: row["name"] for row in listing for view in row["dependencies_table"]}

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
