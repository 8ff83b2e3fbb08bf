"""Cut a body of events into checked batches, piece by piece.

A body is checked in pieces cut after a newline, so only one piece's rows are Python
objects at a time. When a piece shows many bad lines, the rest of the body goes to the
engine's sift (`sift`), which quarantines in bulk the lines it can tell are bad. The
writer (`batch_writes.BatchWriter`) joins the good rows of the pieces in one insert.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Callable, Iterator

import orjson

from .row_checks import CleanRows, QuarantinedRow, RowChecker


@dataclass
class Outcome:
    """What checking one line added to a batch (`CheckedBatch.outcome_since`)."""

    rows: bytes
    row_count: int
    compact: bytes
    compact_count: int
    lacking_count: int
    broken: bytes
    broken_count: int
    quarantined: list[QuarantinedRow]
    bare: bytes | None


@dataclass
class CheckedBatch:
    """One batch of checked lines, as the engine takes them.

    Encoded rows are appended to one growing buffer, never kept as objects of their own:
    orjson returns each encoding in a buffer larger than it, cut down to size, and
    keeping tens of thousands of those alive grows the heap by a page every few rows,
    whose page faults cost more than the checks. Each encoding is copied into the buffer
    and freed, so the next one reuses its memory.
    """

    # The checked events, encoded, one JSON line each. Encoding what was checked, never
    # the raw line, matters: with a key given twice the parser keeps the last value and
    # the engine the first, so the raw line could carry a value that was never checked.
    ndjson: bytearray = field(default_factory=bytearray)
    row_count: int = 0
    # More checked events, in runs of many lines encoded at once (`add_rows`). A run is
    # kept as it is, not copied into `ndjson`: the engine takes the rows in parts.
    row_runs: list[bytes] = field(default_factory=list)
    quarantined: list[QuarantinedRow] = field(default_factory=list)
    # Lines that cannot be events (not blank, and not `{...}`), left in the body's bytes
    # for the engine to find and quarantine in one statement: `rejected` is the window
    # they are in (the engine skips its other lines, and says how many it kept).
    rejected: bytes = b""
    # Lines shaped like objects that are not JSON, as sent, one per line: the engine
    # keeps them with the rejected lines.
    broken: bytearray = field(default_factory=bytearray)
    broken_count: int = 0
    # Broken lines that came many times (`batch_writes.settle`), with how many times.
    repeated_broken: list[tuple[bytes, int]] = field(default_factory=list)
    # Lines the engine has already quarantined for this batch (`checked_batches`' sift).
    sifted_count: int = 0
    # Quarantined events, one JSON line each, in the quarantine's compact storage form
    # (see `quarantine`): the columns' values as text by position, the missing columns'
    # positions, and the other errors' positions and texts. A tiny object that lacks a
    # dozen columns stays small, not a dozen reasons long.
    compact: bytearray = field(default_factory=bytearray)
    compact_count: int = 0
    # The compact rows of events that lack a required column: the sift can find such
    # lines itself, so they count towards handing it the rest of a piece.
    lacking_count: int = 0
    # Compact rows of events that hold none of the datasource's columns (`{}`): such rows
    # are all alike (no values, the same reasons), so each is kept once, with how many.
    bare: dict[bytes, int] = field(default_factory=dict)
    bare_count: int = 0
    _last_bare: bytes = b""

    def add_row(self, encoded: bytes) -> None:
        self.ndjson += encoded
        self.ndjson += b"\n"
        self.row_count += 1

    def add_rows(self, rows: bytes, count: int) -> None:
        """Add `count` encoded rows, each ended by a newline."""
        self.row_runs.append(rows)
        self.row_count += count

    def add_rows_of(self, other: CheckedBatch) -> None:
        """Add the good rows of `other`, which keeps them too."""
        self.row_runs += other.row_parts()
        self.row_count += other.row_count

    def row_parts(self) -> list[bytes]:
        """The good rows, in parts that each end with a newline: the engine's insert."""
        return [*self.row_runs, bytes(self.ndjson)] if self.ndjson else list(self.row_runs)

    def add_compact(self, *parts: bytes, lacking: bool = True) -> None:
        """Add one compact row, given in parts; `lacking` if its event lacks a column."""
        for part in parts:
            self.compact += part
        self.compact += b"\n"
        self.compact_count += 1
        self.lacking_count += lacking

    def add_bare(self, row: bytes) -> None:
        self.bare[row] = self.bare.get(row, 0) + 1
        self.bare_count += 1
        self._last_bare = row

    def sizes(self) -> tuple[int, ...]:
        """Where the batch stands, for `outcome_since`."""
        return (len(self.ndjson), self.row_count, len(self.compact), self.compact_count,
                self.lacking_count, len(self.broken), self.broken_count,
                len(self.quarantined), self.bare_count)

    def outcome_since(self, sizes: tuple[int, ...]) -> Outcome:
        """What was added to the batch since it stood at `sizes` (one line's check)."""
        (rows, row_count, compact, compact_count, lacking_count, broken, broken_count,
         quarantined, bare) = sizes
        return Outcome(bytes(self.ndjson[rows:]), self.row_count - row_count,
                       bytes(self.compact[compact:]), self.compact_count - compact_count,
                       self.lacking_count - lacking_count,
                       bytes(self.broken[broken:]), self.broken_count - broken_count,
                       self.quarantined[quarantined:],
                       self._last_bare if self.bare_count > bare else None)

    def add_outcome(self, outcome: Outcome) -> None:
        """Add again what checking a line added (the same line, sent again)."""
        self.ndjson += outcome.rows
        self.row_count += outcome.row_count
        self.compact += outcome.compact
        self.compact_count += outcome.compact_count
        self.lacking_count += outcome.lacking_count
        self.broken += outcome.broken
        self.broken_count += outcome.broken_count
        self.quarantined += outcome.quarantined
        if outcome.bare is not None:
            self.add_bare(outcome.bare)

    def take_rows(self) -> CheckedBatch:
        """A batch of this batch's good rows, which leave this one."""
        rows = CheckedBatch(ndjson=self.ndjson, row_count=self.row_count,
                            row_runs=self.row_runs)
        self.ndjson, self.row_count, self.row_runs = bytearray(), 0, []
        return rows

    def add_broken(self, line: bytes) -> None:
        self.broken += line
        self.broken += b"\n"
        self.broken_count += 1

    @property
    def rows(self) -> list[bytes]:
        """The encoded rows one by one (an encoded row holds no raw newline)."""
        return b"".join(self.row_parts()).splitlines()

    @property
    def siftable_count(self) -> int:
        """The bad lines the sift would have quarantined too: not JSON, or lacking a
        column."""
        return self.broken_count + self.lacking_count + self.bare_count

    @property
    def quarantined_count(self) -> int:
        return (len(self.quarantined) + self.compact_count + self.bare_count
                + self.broken_count + self.sifted_count
                + sum(count for _, count in self.repeated_broken))


# A line the Python checks read is shaped like an object: `{...}`, blanks around it. Any
# other non-blank line cannot be an event (a lone `{`, a line cut short, `1`); the engine
# keeps those itself, with the same test (`sift._kind_sql`), so neither side touches the
# other's lines and a flood of them costs no Python per line.
_OBJECT_LINE = re.compile(rb"(?m)^[ \t\r]*(\{[^\n]*\})[ \t\r]*$")
# A line the sift gave back: lines end with a newline only (a line may hold a \r).
_KEPT_LINE = re.compile(rb"[^\n]+")
# A line that is neither blank nor shaped like an object: it is quarantined whole.
REJECTED_LINE = re.compile(rb"(?m)^(?![ \t\r]*(?:\{[^\n]*\}[ \t\r]*)?$)[^\n]+")
# The pieces a body is checked in (`checked_body`). The engine reads one piece's rows
# while the next is checked, so smaller pieces overlap more; each costs a few calls.
WINDOW_BYTES = 1 << 18
# Bad rows in one batch: bounds the Python objects of the rows quarantined whole, and lets
# the writer store a flood's quarantine rows while the rest of it is checked.
BATCH_ROWS = 5000
# Rows of any kind in one batch: bounds the engine's memory for one insert, which grows
# with the rows it parses, however small each row is.
BATCH_MAX_ROWS = 100_000
# Bad lines of a piece after which its other lines are sifted by the engine first (see
# `checked_batches`).
SIFT_AFTER = 100
# The least of a body worth sifting (`checked_body`): below it, what a sift costs before
# it reads a line outweighs what Python spends checking the lines.
SIFT_MIN_BYTES = 1 << 20
# Quarantines the lines of a body (as sent) between two offsets that cannot be events or
# that surely lack a column; returns the others, one per line, and how many it
# quarantined (`batch_writes.sift_lines`, bound to an engine, a datasource and an import
# id).
Sift = Callable[[bytes, int, int], tuple[bytes, int]]
# The same for the rest of the body, from an offset in the piece (`checked_batches`),
# told how many of the piece's lines before it only Python could judge; None if it
# declines to.
SiftRest = Callable[[int, int], tuple[bytes, int] | None]


@dataclass
class PieceLines:
    """What the checks of one piece saw: its lines shaped like objects, and how many of
    them the sift would have kept too (not JSON, or lacking a column)."""

    objects: int = 0
    siftable: int = 0

    @property
    def python_only(self) -> int:
        """The lines only Python could judge: the sift would have given them back."""
        return self.objects - self.siftable


def as_ndjson(body: bytes) -> bytes:
    """The body as NDJSON: a body that is one pretty-printed JSON object becomes one
    line; a JSON array, one line per item; anything else stays as it is."""
    first = body.find(b"\n")
    if first > 0 and _is_object(body[:first]):
        return body  # NDJSON: its first line holds an object alone (no copy of the body)
    stripped = body.strip()
    # json gives up on values nested past the interpreter's depth (RecursionError): such
    # a body stays as it is, and its lines are checked one by one.
    if stripped.startswith(b"{") and b"\n" in stripped:
        try:
            json.loads(stripped)
            # Inside valid JSON a raw newline can only be whitespace between tokens.
            return stripped.replace(b"\n", b" ").replace(b"\r", b" ")
        except (ValueError, RecursionError):
            pass
    elif stripped.startswith(b"["):
        try:
            events = json.loads(stripped)
            if isinstance(events, list):
                return b"\n".join(json.dumps(e).encode() for e in events)
        except (ValueError, RecursionError):
            pass
    return body


def _is_object(line: bytes) -> bool:
    """Whether a line holds one JSON object."""
    try:
        return type(orjson.loads(line)) is dict
    except orjson.JSONDecodeError:
        return False


def checked_body(checker: RowChecker, body: bytes, sift: Sift | None = None,
                 size: int = WINDOW_BYTES) -> Iterator[CheckedBatch]:
    """Check a whole body (`as_ndjson`), in pieces of about `size` bytes cut after a
    newline (`checked_batches`).

    Pieces are cut as they are needed. So only one piece's rows exist as Python objects
    at a time, and the engine can read the rows of one piece while the next is checked
    (`batch_writes.BatchWriter`).

    A piece asks for a sift when it shows many bad lines, or lines that cannot be events.
    The engine then sifts the whole rest of the body in one call, if most of the piece's
    lines so far were ones it could have judged too. A call costs the engine a few
    statements, so one call beats a call per piece, or a trial part first. A body whose
    first lines mislead this test costs one call that gives every line back. A rest of
    under `SIFT_MIN_BYTES` stays with Python: sifting a few hundred lines costs far more
    than checking them.

    Args:
        checker: the checks of the data source the body is for.
        body: the body as sent (NDJSON, or one JSON object or array).
        sift: hands part of the body to the engine's sift; None to check every line here.
        size: the bytes of a piece, cut after a newline.

    Yields:
        The batches of each piece in turn.
    """
    ndjson = as_ndjson(body)
    start = 0
    while start < len(ndjson):
        end = ndjson.find(b"\n", start + size)
        end = len(ndjson) if end < 0 else end
        sifted = False

        def sift_rest(offset: int, python_only: int, start: int = start
                      ) -> tuple[bytes, int] | None:
            nonlocal sifted
            begin = start + offset
            if sift is None or len(ndjson) - begin < SIFT_MIN_BYTES:
                return None
            if python_only * 2 > ndjson.count(b"\n", start, begin):
                return None  # the engine would give most lines back
            sifted = True
            # The body as it is: no copy of it.
            return sift(ndjson, begin, len(ndjson))

        rejected = False
        seen = PieceLines()
        for batch in checked_batches(checker, ndjson[start:end], sift=sift_rest, seen=seen):
            rejected = rejected or bool(batch.rejected)
            yield batch
        rest = sift_rest(end + 1 - start, seen.python_only) \
            if rejected and not sifted else None
        if rest is not None:
            # The piece held lines that cannot be events: the rest of the body may be a
            # flood of them, which the engine keeps grouped.
            kept, quarantined = rest
            yield from checked_batches(checker, kept, kept=True)
            if quarantined:
                yield CheckedBatch(sifted_count=quarantined)
        # After a sift, the body has been read to its end (the kept lines stood for the
        # rest of the piece, and past it).
        start = len(ndjson) if sifted else end + 1


def _clean_rows(clean: CleanRows, window: bytes, max_rows: int) -> tuple[bytes, int] | None:
    """A window whose every line is a clean event, as rows and their count; else None."""
    # A window of bad lines is not split into a list of millions of lines to learn it.
    first = window.find(b"\n")
    if clean.read(window if first < 0 else window[:first]) is None:
        return None
    lines = window.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    if not lines or len(lines) > max_rows:
        return None
    rows = clean.read_all(lines)
    return None if rows is None else (rows, len(lines))


def _object_lines(window: bytes) -> Iterator[tuple[bytes, int]]:
    """Each line of `window` shaped like an object, and where it ends in the window."""
    return ((match.group(1), match.end()) for match in _OBJECT_LINE.finditer(window))


def _kept_lines(lines: bytes) -> Iterator[tuple[bytes, int]]:
    """Each line the sift gave back, read as needed: there may be a body's worth. They
    come after the window's own lines, so none ends in it (-1)."""
    return ((line.group(), -1) for line in _KEPT_LINE.finditer(lines))


class _RepeatedLines:
    """Checks lines, and checks a line that comes again right after itself only once.

    The sift gives each line back as many times as it came, one after the other, and a
    line sent again gets the same outcome. The first time a line comes again it is
    checked again, to learn what checking it adds: a flood of lines all different pays
    nothing for that.
    """

    def __init__(self, checker: RowChecker):
        self._checker = checker
        self._previous: bytes | None = None
        self._outcome: Outcome | None = None  # once `_previous` came a second time

    def check(self, line: bytes, batch: CheckedBatch) -> None:
        """Check `line` into `batch`."""
        if line != self._previous:
            self._checker.check_line(line, batch)
            self._previous, self._outcome = line, None
        elif self._outcome is None:
            sizes = batch.sizes()
            self._checker.check_line(line, batch)
            self._outcome = batch.outcome_since(sizes)
        else:
            batch.add_outcome(self._outcome)


def checked_batches(checker: RowChecker, window: bytes, rows: int = BATCH_ROWS,
                    max_rows: int = BATCH_MAX_ROWS, sift: SiftRest | None = None,
                    seen: PieceLines | None = None, kept: bool = False
                    ) -> Iterator[CheckedBatch]:
    """Check one piece of NDJSON, and yield its batches as they fill.

    A batch goes out after `rows` bad rows or `max_rows` lines. Whole bad rows stay
    Python objects until written, and the writer stores one batch's compact rows while
    the next is checked. Still, few large batches matter: each insert costs the engine
    the same fixed work, whatever its size.

    Lines that cannot be events are left to the engine, with the last batch. They never
    become Python objects, not even to be counted.

    Checking a line costs Python the same however small the line is. So after
    `SIFT_AFTER` bad lines (not JSON, or lacking a required column), the piece may hand
    the rest of the body to `sift`. The engine quarantines in bulk the lines it can judge
    (see `sift`), and gives back the others.

    Args:
        checker: the checks of the data source the piece is for.
        window: the piece: whole lines of NDJSON.
        rows: the bad rows (whole or compact) after which a batch goes out.
        max_rows: the lines checked after which a batch goes out.
        sift: hands the rest of the body, from an offset in the piece, to the engine's
            sift.
        seen: counts the piece's lines shaped like objects, and which of them are bad in
            a way the sift finds too.
        kept: the window is lines the sift gave back, one per line: all are shaped like
            objects, so none is looked for that cannot be an event.

    Yields:
        The batches of the piece, each as it fills.
    """
    batch = CheckedBatch()
    if checker.clean is not None:
        clean = _clean_rows(checker.clean, window, max_rows)
        if clean is not None:
            batch.add_rows(*clean)
            if seen is not None:
                seen.objects += clean[1]
            yield batch
            return
    # The part of the window whose rejected lines are to be kept.
    read = 0 if kept else len(window)
    seen = PieceLines() if seen is None else seen
    checked = 0
    lines = _kept_lines(window) if kept else _object_lines(window)
    repeats = _RepeatedLines(checker)
    while (item := next(lines, None)) is not None:
        line, end = item
        checked += 1
        seen.objects += 1
        before = batch.siftable_count
        repeats.check(line, batch)
        if batch.siftable_count > before:
            seen.siftable += 1
            if seen.siftable == SIFT_AFTER and sift is not None and end < len(window):
                # The rest goes as sent: the engine finds its lines that cannot be
                # events too.
                sifted = sift(end, seen.python_only)
                if sifted is not None:
                    read = end
                    batch.sifted_count += sifted[1]
                    lines = _kept_lines(sifted[0])
        if len(batch.quarantined) + batch.compact_count >= rows or checked >= max_rows:
            yield batch
            batch, checked = CheckedBatch(), 0
    if REJECTED_LINE.search(window, 0, read):
        batch.rejected = window[:read]
    if batch.row_count or batch.quarantined_count or batch.rejected:
        yield batch
