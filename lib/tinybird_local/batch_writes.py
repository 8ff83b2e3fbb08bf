"""Write checked batches into the engine: good rows, quarantined rows, rejected lines.

A batch (`batches.CheckedBatch`) holds its rows in a few encoded forms, and each form
goes to its own table in one insert, so a body costs a few statements, not one per row.
The sift lives here too: it writes the part of a body the engine quarantines itself.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from .batches import CheckedBatch
from .datafiles import Datasource
from .engine import Engine, EngineError
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

# The pieces a sifted body goes to the engine in (`sift_lines`).
SIFT_PIECE_BYTES = 1 << 19
# One sift at a time: its tables are shared. chDB opens one data directory per process,
# so a process has one engine, and this one lock.
_SIFT_LOCK = threading.Lock()


@dataclass
class InsertResult:
    """What one write of a body did: the rows stored, the rows quarantined, its id."""

    successful_rows: int
    quarantined_rows: int
    import_id: str


def insert_batch(engine: Engine, datasource: Datasource, batch: CheckedBatch,
                 import_id: str | None = None, table: str | None = None) -> InsertResult:
    """Write a checked batch into `datasource` (or `table`, a staging copy of it); the
    rows the engine refuses, and the batch's quarantined ones, go to its quarantine.

    Args:
        engine: the engine to write into.
        datasource: the data source the batch was checked for.
        batch: the checked batch.
        import_id: the write's id, kept with its quarantined rows; a new one if None.
        table: the table the good rows go to, if not the data source's own.

    Returns:
        The rows written and quarantined, and the import id.
    """
    import_id = import_id or str(uuid.uuid4())
    table = table or datasource.name
    quarantined = list(batch.quarantined)
    inserted = 0
    if batch.row_count:
        try:
            _insert_ndjson(engine, table, bytes(batch.ndjson))
            inserted = batch.row_count
        except EngineError:
            # The engine refused the batch (a type we do not check in Python): find
            # the rows it refuses one by one, so the good ones still land.
            for row in batch.rows:
                try:
                    _insert_ndjson(engine, table, row + b"\n")
                    inserted += 1
                except EngineError as exc:
                    values = json.loads(row)
                    quarantined.append(QuarantinedRow(
                        {c.name: _text(values.get(c.name)) for c in datasource.columns},
                        ["__row__"], [exc.message[:500]]))
    if quarantined:
        _quarantine_rows(engine, datasource, quarantined, import_id)
    if batch.compact_count or batch.bare_count:
        bare = b"".join(row[:-1] + b',"%s":%d}\n' % (REPEAT.encode(), count)
                        for row, count in batch.bare.items())
        _insert_quarantine(engine, compact_rows_name(datasource), bytes(batch.compact) + bare,
                           import_id)
    rejected = _quarantine_lines(engine, datasource, batch.rejected, import_id) \
        if batch.rejected else 0
    if batch.broken_count:
        engine.insert_raw(f"INSERT INTO {quote_identifier(rejected_rows_name(datasource))} "
                          f"(line) SETTINGS log_comment = {quote_string(import_id)}",
                          "LineAsString", bytes(batch.broken))
    return InsertResult(inserted, len(quarantined) + batch.compact_count + batch.bare_count
                        + batch.broken_count + batch.sifted_count + rejected, import_id)


def sift_lines(engine: Engine, ds: Datasource, import_id: str, lines: bytes, start: int = 0,
               end: int | None = None) -> tuple[bytes, int]:
    """Quarantine the lines of a body that cannot be events or are not JSON, and those the
    engine checks and finds bad (see `sift`).

    The body goes in pieces cut after a newline: the engine's memory follows the
    lines of one insert (it groups them). Each statement holds the engine on its own,
    so queries are not kept waiting for the whole body.

    Args:
        engine: the engine to write into.
        ds: the data source the body is for.
        import_id: the write's id, kept with its quarantined rows.
        lines: the body, as sent.
        start: where the lines to sift begin.
        end: where they end: after a newline, or at the end of the body if None.

    Returns:
        The object lines left for the Python checks, one per line, and how many lines
        were quarantined.
    """
    sift, sifted = (quote_identifier(n) for n in sift_names(ds))
    checked = False
    with _SIFT_LOCK:
        try:
            stop = len(lines) if end is None else end
            while start < stop:
                cut = lines.find(b"\n", start + SIFT_PIECE_BYTES, stop)
                cut = stop if cut < 0 else cut + 1
                engine.insert_raw(f"INSERT INTO {sift}", "LineAsString", lines[start:cut])
                start = cut
            for statement in read_sql(ds, import_id):
                engine.execute(statement)
            # The check is slow to plan: it is not run for a body without JSON objects.
            if int(engine.query(objects_sql(ds), "TSV")):
                checked = True
                engine.execute(check_sql(ds, import_id))
            quarantined = int(engine.query(
                f"SELECT sumIf({REPEAT}, outcome != {KEPT}) FROM {sifted}", "TSV"))
            kept = engine.query(f"SELECT line FROM {sifted} ARRAY JOIN range({REPEAT}) "
                                f"WHERE outcome = {KEPT}", "TabSeparatedRaw")
        finally:
            if checked:
                engine.execute(flush_sql(ds))
            for table in sift_tables(ds):
                engine.truncate(table)
    return kept, quarantined


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _lines_in(data: bytes) -> int:
    """The rows `LineAsString` reads from `data`: one per line, the last one unended too."""
    return data.count(b"\n") + (not data.endswith(b"\n"))


def _insert_ndjson(engine: Engine, table: str, payload: bytes) -> None:
    engine.insert_raw(f"INSERT INTO {quote_identifier(table)}", "JSONEachRow", payload)


def _insert_quarantine(engine: Engine, table: str, payload: bytes, import_id: str) -> None:
    """Quarantine rows as JSON lines; the engine adds the import id and the time."""
    engine.insert_raw(f"INSERT INTO {quote_identifier(table)} "
                      f"SETTINGS log_comment = {quote_string(import_id)}", "JSONEachRow",
                      payload)


def _quarantine_rows(engine: Engine, ds: Datasource, rows: list[QuarantinedRow],
                     import_id: str) -> None:
    """Rows quarantined whole, in Tinybird's form, into the quarantine's storage table."""
    batch = CheckedBatch()
    for row in rows:
        batch.add_row(encode({**row.values, "c__error_column": row.error_columns,
                              "c__error": row.errors}))
    _insert_quarantine(engine, storage_name(ds), bytes(batch.ndjson), import_id)


def _quarantine_lines(engine: Engine, ds: Datasource, window: bytes, import_id: str) -> int:
    """Hand a piece of the body to the rejected-lines view; how many it quarantined.

    The engine counts them: the insert writes one row per line of the piece into the
    Null table and one per rejected line into the quarantine, so no Python runs per
    line, not even to count.
    """
    lines, _ = rejected_lines_names(ds)
    statement = (f"INSERT INTO {quote_identifier(lines)} "
                 f"SETTINGS log_comment = {quote_string(import_id)}")
    return engine.insert_raw(statement, "LineAsString", window) - _lines_in(window)
