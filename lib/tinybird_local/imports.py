"""How a file becomes rows of a data source: CSV, NDJSON or Parquet; appended or replacing.

Every row is checked as the Events API checks it (`row_checks.RowChecker`): good rows are
written, bad ones go to `{name}_quarantine`, and the import still succeeds. A Parquet file
is read by the engine's own Parquet reader, row by row into JSON, so its rows meet the
same checks and jsonpaths name its columns. A replace fills a staging table first and
swaps it in with one hold of the engine (`schema.replace_from`), so readers see the old
rows or the new ones, never half of each; with a `replace_condition`, only the rows that
match it are replaced.
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from .batch_writes import BatchWriter, InsertResult
from .batches import CheckedBatch, checked_body
from .datafile_sql import NO_TIME_LIMIT
from .datafiles import Datasource
from .engine import Engine, EngineError
from .row_checks import RowChecker
from .schema import replace_from, staging_table
from .sql_template import quote_string
from .state import LocalState

BATCH_ROWS = 5000
# Where an uploaded Parquet file waits, in the data dir, while the engine reads it.
UPLOADS_DIR = "uploads"


class BadFile(ValueError):
    """A file that cannot be imported as sent; the message names the problem."""


@dataclass(frozen=True)
class Imported:
    """What an import did: its id and the rows written, quarantined and unreadable."""

    import_id: str
    successful_rows: int
    quarantined_rows: int
    invalid_lines: int


def import_file(state: LocalState, ds: Datasource, data: bytes, fmt: str, delimiter: str,
                mode: str, condition: str | None = None) -> Imported:
    """Check and write a whole file into `ds`, appending or replacing.

    Args:
        state: the server's state.
        ds: the data source.
        data: the file, already gunzipped; a Parquet file's rows as NDJSON
            (`parquet_as_ndjson`), so that a file the engine cannot read is refused
            before anything is created or written.
        fmt: csv, or ndjson (a Parquet file's too).
        delimiter: the CSV delimiter.
        mode: append or replace.
        condition: with replace, only rows matching it are replaced (already checked
            by the guard); None replaces every row.

    Returns:
        What the import did.

    Raises:
        EngineError: the engine refused a write.
    """
    checker = state.checkers[ds.name]
    counts = {"invalid": 0}
    import_id = str(uuid.uuid4())

    def write(table: str | None = None) -> InsertResult:
        writer = BatchWriter(state.engine, ds, import_id, table)
        batches: Iterable[CheckedBatch]
        if fmt == "csv":
            batches = _csv_batches(checker, data, delimiter, counts)
        else:
            batches = checked_body(checker, data, sift=writer.sift)
        return writer.write(batches)

    if mode == "replace":
        staging = staging_table(state.engine, ds)
        try:
            result = write(staging)
            replace_from(state.engine, ds, staging, state.project, condition)
        finally:
            state.engine.drop_table(staging)
        state.catalog.touch_datasource(ds.name)
    else:
        result = write()
    return Imported(import_id, result.successful_rows, result.quarantined_rows,
                    counts["invalid"])


def parquet_as_ndjson(engine: Engine, data: bytes, import_id: str) -> bytes:
    """A Parquet file's rows as NDJSON, read by the engine; its column names are the keys.

    The engine reads files only, so the upload waits in the data dir until it is read.

    Raises:
        BadFile: the engine cannot read the file as Parquet.
    """
    folder = engine.data_dir / UPLOADS_DIR
    folder.mkdir(exist_ok=True)
    path = folder / f"{import_id}.parquet"
    path.write_bytes(data)
    try:
        return engine.query(f"SELECT * FROM file({quote_string(str(path))}, Parquet)\n"
                            f"{NO_TIME_LIMIT}", "JSONEachRow")
    except EngineError as exc:
        reason = exc.message.replace(str(path), "the file")
        raise BadFile(f"The Parquet file could not be read: {reason}") from None
    finally:
        path.unlink(missing_ok=True)


def _csv_batches(checker: RowChecker, data: bytes, delimiter: str,
                 counts: dict[str, int]) -> Iterator[CheckedBatch]:
    """CSV rows as events: by the header's names when the first row names columns,
    else by position. A row with more fields than columns is quarantined whole."""
    ds = checker.datasource
    text = data.decode("utf-8-sig", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    names = [c.name for c in ds.columns]
    order = names
    batch = CheckedBatch()
    first = True
    for fields in reader:
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        if first:
            first = False
            header = [f.strip() for f in fields]
            if set(header) <= set(names) and len(set(header)) == len(header):
                order = header
                continue
        if len(fields) > len(order):
            counts["invalid"] += 1
            checker.reject(delimiter.join(fields), f"the row has {len(fields)} fields, "
                           f"the Data Source {len(order)} columns", batch)
        else:
            checker.check_event(_event(ds, order, fields), batch)
        if batch.row_count + batch.quarantined_count >= BATCH_ROWS:
            yield batch
            batch = CheckedBatch()
    if batch.row_count or batch.quarantined_count:
        yield batch


def _event(ds: Datasource, order: list[str], fields: list[str]) -> dict[str, Any]:
    """One CSV row as the JSON event the row checker reads (values at their JSON paths).

    An empty field of a column that is not a String is left out, so the column's DEFAULT
    (or NULL) applies, as ClickHouse reads an empty CSV field."""
    event: dict[str, Any] = {}
    for name, value in zip(order, fields, strict=False):
        column = ds.column(name)
        if column is None:
            continue
        if value == "" and "String" not in column.type:
            continue
        keys = column.json_keys
        target = event
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = value
    return event
