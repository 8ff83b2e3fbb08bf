"""Write checked batches into the engine: good rows, quarantined rows, rejected lines.

A batch (`batches.CheckedBatch`) holds its rows in a few encoded forms, and each form
goes to its own table in one insert, so a body costs a few statements, not one per row.
The sift lives here too: it writes the part of a body the engine quarantines itself.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .batches import BATCH_MAX_ROWS, BATCH_ROWS, REJECTED_LINE, CheckedBatch
from .datafiles import Datasource
from .engine import Engine, EngineError, OpenInsert
from .quarantine import (
    REPEAT,
    compact_rows_name,
    rejected_rows_name,
    storage_name,
    write_settings,
)
from .row_checks import QuarantinedRow, RowChecker, encode
from .sift import (
    SIFT_ID,
    keep_sql,
    kept_sql,
    quarantined_sql,
    rejected_sql,
    sift_names,
    unchecked_rows_name,
)
from .sql_template import quote_identifier, quote_string

# The pieces a sifted body goes to the engine in (`sift_lines`). Each insert costs the
# engine a few milliseconds of its own, so pieces are large. The engine groups one
# piece's lines in memory, so a piece is bounded all the same, and in lines too: tiny
# distinct lines grouped slower in pieces of over about 100,000 lines.
SIFT_PIECE_BYTES = 1 << 21
SIFT_PIECE_LINES = 1 << 16
# Up to this many lines of a piece that cannot be events are found and written here;
# more go through the sift's tables, so a flood of them costs no Python per line.
FEW_REJECTED = 1000
# Batches of bad lines held while an insert is open (`BatchWriter`): each holds at most a
# piece's lines, so this bounds the memory they take.
HELD_BATCHES = 16
# One sift at a time: its tables are shared. chDB opens one data directory per process,
# so a process has one engine, and this one lock. A plain lock, not a reentrant one: a
# sift may end in another thread than the one it started in (`start_sift`).
_SIFT_LOCK = threading.Lock()


@dataclass
class InsertResult:
    """What one write of a body did: the rows stored, the rows quarantined, its id."""

    successful_rows: int
    quarantined_rows: int
    import_id: str


def insert_batch(engine: Engine, datasource: Datasource, batch: CheckedBatch,
                 import_id: str | None = None, table: str | None = None,
                 token: str | None = None) -> InsertResult:
    """Write a checked batch into `datasource` (or `table`, a staging copy of it); the
    rows the engine refuses, and the batch's quarantined ones, go to its quarantine.

    Args:
        engine: the engine to write into.
        datasource: the data source the batch was checked for.
        batch: the checked batch.
        import_id: the write's id, kept with its quarantined rows; a new one if None.
        table: the table the good rows go to, if not the data source's own.
        token: the settle's token for its quarantine writes: a write made again with it
            is dropped (see `quarantine.write_settings`).

    Returns:
        The rows written and quarantined, and the import id.
    """
    import_id = import_id or str(uuid.uuid4())
    table = table or datasource.name
    quarantined = list(batch.quarantined)
    inserted = 0
    if batch.row_count:
        try:
            _insert_ndjson(engine, table, batch.row_parts())
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
    settings = write_settings(import_id, token)
    if quarantined:
        _quarantine_rows(engine, datasource, quarantined, settings)
    if batch.compact_count or batch.bare_count:
        bare = b"".join(row[:-1] + b',"%s":%d}\n' % (REPEAT.encode(), count)
                        for row, count in batch.bare.items())
        _insert_quarantine(engine, compact_rows_name(datasource), bytes(batch.compact) + bare,
                           settings)
    rejected = _quarantine_lines(engine, datasource, batch.rejected, import_id) \
        if batch.rejected else 0
    rejected_rows = quote_identifier(rejected_rows_name(datasource))
    if batch.broken_count:
        engine.insert_raw(f"INSERT INTO {rejected_rows} (line) {settings}", "LineAsString",
                          bytes(batch.broken))
    if batch.repeated_broken:
        # A second write into the same table: a token of its own.
        again = write_settings(import_id, None if token is None else f"{token}\tagain")
        engine.insert_raw(f"INSERT INTO {rejected_rows} (line, {REPEAT}) {again}",
                          "RowBinary", _row_binary(batch.repeated_broken))
    return InsertResult(inserted, batch.quarantined_count + len(quarantined)
                        - len(batch.quarantined) + rejected, import_id)


class BatchWriter:
    """Writes the checked batches of one body, while the next ones are checked.

    The good rows of one batch after another go into one insert, left open. The engine
    reads each batch's rows in threads of its own while Python checks the next piece.
    One insert costs the engine its fixed work once, not once per piece.

    The bad lines of a batch wait until that insert is stored: no other insert may run
    meanwhile. Then a writer thread writes them, one batch at a time, while checking
    goes on. Both ways in (Events API, Data Sources API) use it.

    Queries go on while the insert is open (`Engine.open_insert`). Other inserts, and
    statements that change tables, wait for it. So the body's own sift stores the open
    insert first: use `sift` as the checks' sift, never `sift_lines` directly.
    """

    def __init__(self, engine: Engine, datasource: Datasource, import_id: str,
                 table: str | None = None):
        """Args:
            engine: the engine to write into.
            datasource: the data source the batches were checked for.
            import_id: the write's id, kept with its quarantined rows.
            table: a staging copy of the data source to write into instead, for a replace.
        """
        self.engine, self.datasource, self.import_id = engine, datasource, import_id
        self.table = table or datasource.name
        self._open: ExitStack | None = None
        self._insert: OpenInsert | None = None
        self._refused = False  # the engine refused a part of the open insert
        self._rows = CheckedBatch()  # the open insert's rows, kept in case it is refused
        self._held: list[CheckedBatch] = []  # bad lines waiting for the insert to be stored
        self._held_objects = 0
        self._pending: Future[InsertResult] | None = None
        self._keeping: Future[InsertResult] | None = None  # the sift's writes
        self._writer: ThreadPoolExecutor | None = None
        self._successful = self._quarantined = 0

    def sift(self, lines: bytes, start: int, end: int) -> tuple[bytes, int]:
        """`sift_lines` for this body, once the open insert is stored.

        The kept lines come back as soon as the engine has sorted them. A writer thread
        then writes the quarantined ones while Python checks the kept ones. It is not
        the batches' thread: a batch may wait there for the sift's tables, which only
        the sift's own writes free.
        """
        self._store()
        self._wait_for_sift()
        kept, quarantined, keep = start_sift(self.engine, self.datasource, self.import_id,
                                             lines, start, end)
        assert self._writer is not None
        self._keeping = self._writer.submit(keep)
        return kept, quarantined

    def write(self, batches: Iterable[CheckedBatch]) -> InsertResult:
        """Write every batch, each as it comes; the rows stored and quarantined in all.

        Args:
            batches: the checked batches, made as they are asked for.
        """
        # Two threads: one for the batches, one at a time, and one for a sift's writes.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="batch-writer") as writer:
            self._writer = writer
            try:
                for batch in batches:
                    self._take(batch)
                self._store()
                self._wait()
                self._wait_for_sift()
            finally:
                if self._open is not None:  # the checks failed: nothing of it is stored
                    self._open.close()
                    self._open = self._insert = None
        return InsertResult(self._successful, self._quarantined, self.import_id)

    def _take(self, batch: CheckedBatch) -> None:
        """Hand a batch's good rows to the open insert, and hold its bad lines while
        one is open; with none open, they go to the writer at once."""
        if batch.row_count:
            rows = batch.take_rows()
            if self._insert is None:
                self._open = ExitStack()
                self._insert = self._open.enter_context(self.engine.open_insert(
                    f"INSERT INTO {quote_identifier(self.table)}", "JSONEachRow"))
            for part in rows.row_parts():
                if not self._refused:
                    try:
                        self._insert.append(part)
                    except EngineError:
                        self._refused = True
            self._rows.add_rows_of(rows)
        if batch.quarantined_count or batch.rejected:
            self._held.append(batch)
            self._held_objects += len(batch.quarantined)
        if (self._insert is None or self._rows.row_count >= BATCH_MAX_ROWS
                or self._held_objects >= BATCH_ROWS or len(self._held) >= HELD_BATCHES):
            self._store()

    def _store(self) -> None:
        """Store the open insert's rows, then hand the held batches to the writer."""
        if self._open is not None and self._insert is not None:
            refused = self._refused
            try:
                if not refused:
                    self._insert.finish()
                    self._successful += self._rows.row_count
            except EngineError:
                refused = True
            finally:
                self._open.close()  # the engine is free again
                self._open = self._insert = None
            rows, self._rows, self._refused = self._rows, CheckedBatch(), False
            if refused:
                # A type the Python checks do not read: `insert_batch` finds the rows
                # the engine refuses one by one, so the good ones still land.
                self._submit(rows)
        held, self._held, self._held_objects = self._held, [], 0
        for batch in held:
            self._submit(batch)

    def _submit(self, batch: CheckedBatch) -> None:
        """Write a batch in the writer thread, once the one before it is written."""
        assert self._writer is not None and self._open is None
        self._wait()
        self._pending = self._writer.submit(insert_batch, self.engine, self.datasource,
                                            batch, self.import_id, self.table)

    def _wait_for_sift(self) -> None:
        """Wait for the sift's writes, if it ran."""
        if self._keeping is not None:
            self._keeping.result()
            self._keeping = None

    def _wait(self) -> None:
        """Wait for the writer's batch, and count what it wrote."""
        if self._pending is not None:
            done = self._pending.result()
            self._pending = None
            self._successful += done.successful_rows
            self._quarantined += done.quarantined_rows


def sift_lines(engine: Engine, ds: Datasource, import_id: str, lines: bytes, start: int = 0,
               end: int | None = None) -> tuple[bytes, int]:
    """Quarantine the lines of a body that cannot be events or surely lack a column
    (see `sift`); give back the others for the Python checks.

    Args:
        engine: the engine to write into.
        ds: the data source the body is for.
        import_id: the write's id, kept with its quarantined rows.
        lines: the body, as sent.
        start: where the lines to sift begin.
        end: where they end: after a newline, or at the end of the body if None.

    Returns:
        The lines left for the Python checks, one per line, and how many lines were
        quarantined.
    """
    kept, quarantined, keep = start_sift(engine, ds, import_id, lines, start, end)
    keep()
    return kept, quarantined


def start_sift(engine: Engine, ds: Datasource, import_id: str, lines: bytes, start: int = 0,
               end: int | None = None) -> tuple[bytes, int, Callable[[], InsertResult]]:
    """`sift_lines`, but the quarantined lines are written only when the returned `keep`
    is called, maybe in another thread. Until then the sift's tables stay taken.

    The body goes in pieces cut after a newline: the engine's memory follows the
    lines of one insert (it groups them). Each statement holds the engine on its own,
    so queries are not kept waiting for the whole body.

    Returns:
        The lines left for the Python checks, one per line; how many lines are
        quarantined; and `keep`, which writes them. Call `keep` exactly once.
    """
    sifted = sift_names(ds)[1]
    _SIFT_LOCK.acquire()
    try:
        stop = len(lines) if end is None else end
        while start < stop:
            cut = _piece_end(lines, start, stop)
            engine.insert_raw(f"INSERT INTO {quote_identifier(sift_names(ds)[0])}",
                              "LineAsString", lines[start:cut])
            start = cut
        quarantined = int(engine.scalar(quarantined_sql(ds)) or 0)
        kept = engine.query(kept_sql(ds), "TabSeparatedRaw")
    except BaseException:
        try:
            engine.truncate(sifted)
        finally:
            _SIFT_LOCK.release()
        raise

    def keep() -> InsertResult:
        try:
            for statement in keep_sql(ds, import_id):
                engine.execute(statement)
        finally:
            try:
                engine.truncate(sifted)
            finally:
                _SIFT_LOCK.release()
        return InsertResult(0, 0, import_id)

    return kept, quarantined, keep


def _piece_end(lines: bytes, start: int, stop: int) -> int:
    """Where the sift's piece from `start` ends: after a newline, past about
    `SIFT_PIECE_BYTES` or `SIFT_PIECE_LINES` (at their lines' mean length), if sooner
    than `stop`. A piece is never cut below half its bytes: lines of a byte or two are
    mostly alike, and are grouped fast, but each insert costs the same."""
    cut = lines.find(b"\n", start + SIFT_PIECE_BYTES, stop)
    cut = stop if cut < 0 else cut + 1
    count = lines.count(b"\n", start, cut)
    if count > SIFT_PIECE_LINES:
        size = max((cut - start) * SIFT_PIECE_LINES // count, SIFT_PIECE_BYTES // 2)
        cut = lines.find(b"\n", start + size, stop)
        cut = stop if cut < 0 else cut + 1
    return cut


def settle(engine: Engine, ds: Datasource, checker: RowChecker) -> int:
    """Check the lines the sift left unchecked, and write their quarantine rows.

    Run before the quarantine is read. Each import's lines are checked as they would
    have been when they came, and written with that import's id and time. Each call of
    the sift's lines is written with a token (`sift.SIFT_ID`), so the engine drops a
    write made again: by a settle cut short before it emptied the unchecked lines, or by
    two settles at once. So the sift's lock is held only to list the lines and to empty
    them, not while Python checks them: other bodies' sifts go on meanwhile.

    Args:
        engine: the engine to read and write.
        ds: the data source whose lines are settled.
        checker: the data source's row checker.

    Returns:
        How many distinct lines were settled.
    """
    unchecked = quote_identifier(unchecked_rows_name(ds))
    with _SIFT_LOCK:
        waiting = _waiting(engine, unchecked)
    settled = 0
    for group in waiting:
        import_id, at, sift_id = group
        rows = _lines_and_counts(engine.query(
            f"SELECT line, {REPEAT} FROM {unchecked} WHERE c__import_id = "
            f"{quote_string(import_id)} AND toString(insertion_date) = {quote_string(at)} "
            f"AND {SIFT_ID} = {quote_string(sift_id)} ORDER BY line", "RowBinary"))
        insert_batch(engine, ds, _settled_batch(checker, rows), f"{import_id}\t{at}",
                     token=f"settle\t{import_id}\t{at}\t{sift_id}")
        settled += len(rows)
    if waiting:
        with _SIFT_LOCK:
            now = _waiting(engine, unchecked)
            if now == waiting:  # a truncate takes the engine whole, but costs little
                engine.truncate(unchecked_rows_name(ds))
            elif done := [group for group in waiting if group in now]:
                # Lines sifted meanwhile stay for the next settle.
                keys = ", ".join("(" + ", ".join(map(quote_string, group)) + ")"
                                 for group in done)
                engine.execute(f"DELETE FROM {unchecked} WHERE (c__import_id, "
                               f"toString(insertion_date), {SIFT_ID}) IN ({keys})")
    return settled


def _waiting(engine: Engine, unchecked: str) -> list[tuple[str, str, str]]:
    """The unchecked lines' groups: import id, time and sift id, oldest first."""
    rows = json.loads(engine.query(
        f"SELECT DISTINCT c__import_id, toString(insertion_date) AS at, {SIFT_ID} "
        f"FROM {unchecked} ORDER BY at, c__import_id, {SIFT_ID}", "JSONCompact"))["data"]
    return [(row[0], row[1], row[2]) for row in rows]


def _lines_and_counts(data: bytes) -> list[tuple[bytes, int]]:
    """Rows of (String, UInt32) in the engine's RowBinary: lines as sent, byte for byte."""
    rows, at = [], 0
    while at < len(data):
        size, shift = 0, 0
        while True:  # the length, as a LEB128 varint
            byte = data[at]
            at += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        line = data[at:at + size]
        rows.append((line, int.from_bytes(data[at + size:at + size + 4], "little")))
        at += size + 4
    return rows


def _row_binary(rows: list[tuple[bytes, int]]) -> bytes:
    """The same rows written in RowBinary."""
    out = bytearray()
    for line, count in rows:
        size = len(line)
        while size >= 0x80:
            out.append((size & 0x7F) | 0x80)
            size >>= 7
        out.append(size)
        out += line
        out += count.to_bytes(4, "little")
    return bytes(out)


def _settled_batch(checker: RowChecker, rows: list[tuple[bytes, int]]) -> CheckedBatch:
    """The unchecked lines, checked; a line that came many times is written once, with
    how many times it came where the quarantine keeps that count."""
    batch = CheckedBatch()
    for line, repeat in rows:
        if repeat == 1:
            checker.check_line(line, batch, clean=False)
            continue
        one = CheckedBatch()
        checker.check_line(line, one, clean=False)
        batch.add_rows(b"".join(one.row_parts()) * repeat, one.row_count * repeat)
        batch.quarantined += one.quarantined * repeat
        for compact in bytes(one.compact).splitlines():
            batch.add_compact(compact[:-1], b',"%s":%d}' % (REPEAT.encode(), repeat))
        for bare, count in one.bare.items():
            batch.bare[bare] = batch.bare.get(bare, 0) + count * repeat
            batch.bare_count += count * repeat
        if one.broken_count:
            batch.repeated_broken.append((bytes(one.broken).rstrip(b"\n"), repeat))
    return batch


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _insert_ndjson(engine: Engine, table: str, payload: bytes | list[bytes]) -> None:
    engine.insert_raw(f"INSERT INTO {quote_identifier(table)}", "JSONEachRow", payload)


def _insert_quarantine(engine: Engine, table: str, payload: bytes, settings: str) -> None:
    """Quarantine rows as JSON lines; the engine adds the import id and the time."""
    engine.insert_raw(f"INSERT INTO {quote_identifier(table)} {settings}", "JSONEachRow",
                      payload)


def _quarantine_rows(engine: Engine, ds: Datasource, rows: list[QuarantinedRow],
                     settings: str) -> None:
    """Rows quarantined whole, in Tinybird's form, into the quarantine's storage table."""
    batch = CheckedBatch()
    for row in rows:
        batch.add_row(encode({**row.values, "c__error_column": row.error_columns,
                              "c__error": row.errors}))
    _insert_quarantine(engine, storage_name(ds), bytes(batch.ndjson), settings)


def _quarantine_lines(engine: Engine, ds: Datasource, window: bytes, import_id: str) -> int:
    """Quarantine the lines of a piece of the body that cannot be events; how many.

    A few such lines are written as they are, alike lines once with how many: a body of
    good rows with a line cut short pays one small insert. More go through the sift's
    tables, which group alike lines; only its rejected lines are kept (the Python checks
    read the others), so no Python runs per line.
    """
    few = list(itertools.islice(REJECTED_LINE.finditer(window), FEW_REJECTED + 1))
    if len(few) <= FEW_REJECTED:
        counts = Counter(match.group() for match in few)
        engine.insert_raw(f"INSERT INTO {quote_identifier(rejected_rows_name(ds))} "
                          f"(line, {REPEAT}) {write_settings(import_id)}", "RowBinary",
                          _row_binary(list(counts.items())))
        return len(few)
    sift = quote_identifier(sift_names(ds)[0])
    with _SIFT_LOCK:
        try:
            engine.insert_raw(f"INSERT INTO {sift}", "LineAsString", window)
            engine.execute(keep_sql(ds, import_id)[0])
            return int(engine.scalar(rejected_sql(ds)) or 0)
        finally:
            engine.truncate(sift_names(ds)[1])
