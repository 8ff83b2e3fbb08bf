"""Check Events API rows against a datasource schema before they reach the engine.

Tinybird accepts the good rows of a request and puts each bad one in
`{datasource}_quarantine` with its original values and the reason, and the request
still succeeds. To do the same we must know which row is bad and why, so each row is
checked here, column by column, and only rows that fit are sent on as JSONEachRow.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import operator
import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Iterator

import msgspec
import orjson

from .datafiles import Column, Datasource
from .quarantine import ERROR_AT, MISSING_AT, ORIGINAL, missing_reason

_MISSING = object()
_ORIGINAL_KEY = b'{"' + ORIGINAL.encode() + b'":'
_INT_TEXT = re.compile(r"^[+-]?\d+$")
_WIDE_INT = re.compile(r"\bU?Int(128|256)\b")
# ISO 8601 forms the engine reads itself: naive, or UTC with a trailing Z (Mockingbird's).
_ENGINE_READS_AS_IS = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d{1,9})?Z?$")


class Bad:
    """What a converter returns for a value its column cannot take: the reason.

    Returned, not raised: when a flood of bad values arrives, raising and catching an
    exception per value costs more than the check itself.
    """

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason


_NOT_INTEGER = Bad("is not an integer")
_NOT_NUMBER = Bad("is not a number")
_BEYOND_FLOAT = Bad("is out of range for a float")
_NOT_DATETIME = Bad("is not a date and time")
_NOT_ISO_DATETIME = Bad("is not an ISO 8601 date and time")
_OUT_OF_DATE_RANGE = Bad("is out of the supported date range")
_NOT_DATE = Bad("is not a date")
_NOT_ISO_DATE = Bad("is not a date (YYYY-MM-DD)")
_NOT_BOOLEAN = Bad("is not a boolean")
_NOT_UUID = Bad("is not a UUID")
_NOT_ARRAY = Bad("is not an array")
_NULL_ITEM = Bad("has a null item")


@dataclass
class QuarantinedRow:
    values: dict[str, str | None]  # the original values, as text
    error_columns: list[str]
    errors: list[str]


@dataclass
class Outcome:
    """What checking one line added to a batch (`CheckedBatch.outcome_since`)."""

    rows: bytes
    row_count: int
    compact: bytes
    compact_count: int
    broken: bytes
    broken_count: int
    quarantined: list[QuarantinedRow]
    bare: bytes | None


@dataclass
class CheckedBatch:
    """One batch of checked lines, as the engine takes them.

    Encoded rows are appended to one growing buffer, never kept as objects of their own:
    orjson returns each encoding in a buffer of 1 KiB or more cut down to size, and
    keeping tens of thousands of those alive grows the heap by a page every few rows
    (page faults cost about 3 µs a row here, more than the checks). Each encoding is
    copied into the buffer and freed, so the next one reuses its memory.
    """

    # The checked events, encoded, one JSON line each. Encoding what was checked, never
    # the raw line, matters: with a key given twice the parser keeps the last value and
    # the engine the first, so the raw line could carry a value that was never checked.
    ndjson: bytearray = field(default_factory=bytearray)
    row_count: int = 0
    quarantined: list[QuarantinedRow] = field(default_factory=list)
    # Lines that cannot be events (not blank, and not `{...}`), left in the body's bytes
    # for the engine to find and quarantine in one statement: `rejected` is the window
    # they are in (the engine skips its other lines, and says how many it kept).
    rejected: bytes = b""
    # Lines shaped like objects that are not JSON, as sent, one per line: the engine
    # keeps them with the rejected lines.
    broken: bytearray = field(default_factory=bytearray)
    broken_count: int = 0
    # Lines the engine has already quarantined for this batch (`checked_batches`' sift).
    sifted_count: int = 0
    # Quarantined rows of a flat datasource that lack required columns, one JSON line
    # each, in the quarantine's compact storage form (see `quarantine`): the present
    # columns' values as text, the missing columns' positions, and the other errors'
    # positions and texts. A tiny object that lacks a dozen columns stays a few dozen
    # bytes, not 1 KB of reasons.
    compact: bytearray = field(default_factory=bytearray)
    compact_count: int = 0
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
        self.ndjson += rows
        self.row_count += count

    def add_compact(self, *parts: bytes) -> None:
        for part in parts:
            self.compact += part
        self.compact += b"\n"
        self.compact_count += 1

    def add_bare(self, row: bytes) -> None:
        self.bare[row] = self.bare.get(row, 0) + 1
        self.bare_count += 1
        self._last_bare = row

    def sizes(self) -> tuple[int, ...]:
        """Where the batch stands, for `outcome_since`."""
        return (len(self.ndjson), self.row_count, len(self.compact), self.compact_count,
                len(self.broken), self.broken_count, len(self.quarantined), self.bare_count)

    def outcome_since(self, sizes: tuple[int, ...]) -> Outcome:
        """What was added to the batch since it stood at `sizes` (one line's check)."""
        rows, row_count, compact, compact_count, broken, broken_count, quarantined, bare = sizes
        return Outcome(bytes(self.ndjson[rows:]), self.row_count - row_count,
                       bytes(self.compact[compact:]), self.compact_count - compact_count,
                       bytes(self.broken[broken:]), self.broken_count - broken_count,
                       self.quarantined[quarantined:],
                       self._last_bare if self.bare_count > bare else None)

    def add_outcome(self, outcome: Outcome) -> None:
        """Add again what checking a line added (the same line, sent again)."""
        self.ndjson += outcome.rows
        self.row_count += outcome.row_count
        self.compact += outcome.compact
        self.compact_count += outcome.compact_count
        self.broken += outcome.broken
        self.broken_count += outcome.broken_count
        self.quarantined += outcome.quarantined
        if outcome.bare is not None:
            self.add_bare(outcome.bare)

    def add_broken(self, line: bytes) -> None:
        self.broken += line
        self.broken += b"\n"
        self.broken_count += 1

    @property
    def rows(self) -> list[bytes]:
        """The encoded rows one by one (an encoded row holds no raw newline)."""
        return bytes(self.ndjson).splitlines()

    @property
    def quarantined_count(self) -> int:
        return (len(self.quarantined) + self.compact_count + self.bare_count
                + self.broken_count + self.sifted_count)


def encode(value: Any) -> bytes:
    """orjson when it can (fast); else the same with half UTF-16 pairs made U+FFFD, and
    json for what orjson still refuses (integers over 64 bits).

    Python reads `"\\ud800"` into a text that is not valid Unicode. Written as an escape,
    the engine either refused the whole insert or kept it in ways that depend on what
    follows it; U+FFFD, the replacement character, is what the engine itself makes of
    invalid text.
    """
    try:
        return orjson.dumps(value)
    except TypeError:
        value = _whole_characters(value)
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":")).encode()


def _whole_characters(value: Any) -> Any:
    """`value` with every half of a UTF-16 pair in its texts (keys too) made U+FFFD."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {_whole_characters(k): _whole_characters(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_characters(item) for item in value]
    return value


def unwrap_type(type_name: str) -> tuple[str, bool]:
    """Strip LowCardinality/Nullable; say whether NULL is allowed."""
    nullable = False
    while True:
        m = re.match(r"^(LowCardinality|Nullable)\((.*)\)$", type_name.strip())
        if not m:
            return type_name.strip(), nullable
        nullable = nullable or m.group(1) == "Nullable"
        type_name = m.group(2)


# Digits past which no column's integer lies (2**256 has 78).
_LONGEST_INTEGER = 80


@functools.cache
def decimal_digits() -> list[tuple[str, int]]:
    """The decimal digits of every script (what re's \\d and int() read) with their
    values, listed when first needed: the scan takes about 30 ms. (No script's digits lie
    past the first two planes.)"""
    return [(chr(c), value) for c in range(0x20000)
            if (value := unicodedata.decimal(chr(c), -1)) >= 0]


@functools.cache
def _leading_zeros() -> re.Pattern[str]:
    """Zeros of every script, as many as lead a text."""
    return re.compile("[" + "".join(d for d, value in decimal_digits() if value == 0) + "]*")


def _integer(text: str) -> int | None:
    """int(text) for a text of digits with a sign or not (`_INT_TEXT`), or None if it has
    too many digits to be any column's. int() itself refuses texts of over 4300 digits
    (a guard against its quadratic cost), so a long one is read past its leading zeros."""
    if len(text) <= _LONGEST_INTEGER:
        return int(text)
    sign = "-" if text[0] == "-" else ""
    digits = text.lstrip("+-")
    digits = digits[_leading_zeros().match(digits).end():]  # type: ignore[union-attr]
    if len(digits) > _LONGEST_INTEGER:
        return None
    return int(sign + (digits or "0"))


def _int_checker(bits: int, signed: bool) -> Callable[[Any], int | Bad]:
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    out_of_range = Bad(f"is out of range [{low}, {high}]")

    def check(value: Any) -> int | Bad:
        if isinstance(value, bool):
            return value  # the engine reads JSON true/false into integer columns as 1/0
        if isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and _INT_TEXT.match(value.strip()):
            read = _integer(value.strip())
            if read is None:
                return out_of_range
            number = read
        else:
            return _NOT_INTEGER
        if not low <= number <= high:
            return out_of_range
        return number

    return check


def _float(value: Any) -> float | Bad:
    if isinstance(value, bool):
        return _NOT_NUMBER
    try:
        number = float(value)
    except (TypeError, ValueError):
        return _NOT_NUMBER
    except OverflowError:  # an integer past 1.8e308 (json reads any, for wide integers)
        return _BEYOND_FLOAT
    if math.isnan(number) and not (isinstance(value, str) and value.lower() == "nan"):
        return _NOT_NUMBER
    return number


def string_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"))


def _datetime(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        return _NOT_DATETIME
    text = value.strip()
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return _NOT_ISO_DATETIME
    if not 1900 <= moment.year <= 2299:
        return _OUT_OF_DATE_RANGE
    if _ENGINE_READS_AS_IS.match(text):
        return text  # UTC or naive: the engine parses it the same, no need to rewrite
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    if not 1900 <= moment.year <= 2299:
        return _OUT_OF_DATE_RANGE
    return moment.isoformat(sep=" ", timespec="microseconds")


def _date(value: Any) -> str | Bad:
    if not isinstance(value, str):
        return _NOT_DATE
    try:
        return dt.date.fromisoformat(value.strip()[:10]).isoformat()
    except ValueError:
        return _NOT_ISO_DATE


def _bool(value: Any) -> bool | Bad:
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in {"true", "false", "0", "1"}:
        return value.lower() in {"true", "1"}
    return _NOT_BOOLEAN


def _uuid(value: Any) -> str | Bad:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return _NOT_UUID


def checker_for(type_name: str) -> tuple[Callable[[Any], Any] | None, bool]:
    """(converter, nullable) for a ClickHouse type; converter None means pass through.

    A converter returns the value as the engine should get it, or a `Bad` with the
    reason it cannot be stored.
    """
    base, nullable = unwrap_type(type_name)
    m = re.match(r"^(U?)Int(8|16|32|64|128|256)$", base)
    if m:
        return _int_checker(int(m.group(2)), signed=not m.group(1)), nullable
    if base in {"Float32", "Float64"}:
        return _float, nullable
    if base == "String" or base.startswith("FixedString") or base.startswith("Enum"):
        return string_value, nullable
    if base.startswith("DateTime"):
        return _datetime, nullable
    if base in {"Date", "Date32"}:
        return _date, nullable
    if base == "Bool":
        return _bool, nullable
    if base == "UUID":
        return _uuid, nullable
    m = re.match(r"^Array\((.*)\)$", base)
    if m:
        inner, inner_nullable = checker_for(m.group(1))

        def check_array(value: Any) -> list[Any] | Bad:
            if not isinstance(value, list):
                return _NOT_ARRAY
            out: list[Any] = []
            for item in value:
                if item is None:
                    if not inner_nullable:
                        return _NULL_ITEM
                    out.append(None)
                    continue
                converted = inner(item) if inner else item
                if type(converted) is Bad:
                    return converted
                out.append(converted)
            return out

        return check_array, nullable
    return None, nullable


_INT64_MAX, _UINT64_MAX = 2**63 - 1, 2**64 - 1
# What msgspec raises for a line that is not a clean event (too deep: RecursionError).
_NOT_CLEAN = (msgspec.ValidationError, msgspec.DecodeError, RecursionError)


def _clean_type(type_name: str) -> Any:
    """The msgspec type of a clean value of a column, or None if its type has none.

    Clean means stored as sent: an integer in range (or a boolean, which the engine
    stores as 1 or 0), a string, or a time as a string (`CleanRows` checks its form).
    """
    base, _ = unwrap_type(type_name)
    m = re.match(r"^(U?)Int(8|16|32|64)$", base)
    if m:
        bits, signed = int(m.group(2)), not m.group(1)
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        if high > _INT64_MAX:  # past what msgspec bounds: `CleanRows` checks it after
            return Annotated[int, msgspec.Meta(ge=low)] | bool
        return Annotated[int, msgspec.Meta(ge=low, le=high)] | bool
    if base == "String" or base.startswith("DateTime"):
        return str
    return None


class CleanRows:
    """Reads the lines that are clean events, fast, for a flat datasource.

    A clean event holds every column, each with a value the engine stores as sent: an
    integer in range, a boolean for an integer, a string, or a time in a form the engine
    reads as it is. msgspec reads and checks such lines in C, with no Python per column,
    and writes them out again. Any other line is refused here, and the full check of
    `RowChecker` decides what it becomes.

    Each line is read on its own: read as one stream, a line holding two objects would
    count as two events.
    """

    def __init__(self, row_type: type, times: list[str], wide: list[str]):
        self._decode: Callable[[bytes | str], Any] = msgspec.json.Decoder(row_type).decode
        self._encoder = msgspec.json.Encoder()
        self._times = [operator.attrgetter(name) for name in times]
        self._wide = [operator.attrgetter(name) for name in wide]

    @classmethod
    def for_datasource(cls, datasource: Datasource) -> CleanRows | None:
        """None if a column's type has no clean form, or a column is not read flat."""
        if not is_flat(datasource):
            return None
        fields, times, wide = [], [], []
        for index, column in enumerate(datasource.columns):
            kind = _clean_type(column.type)
            if kind is None:
                return None
            fields.append((f"c{index}", kind))
            base = unwrap_type(column.type)[0]
            if base.startswith("DateTime"):
                times.append(f"c{index}")
            elif base == "UInt64":
                wide.append(f"c{index}")
        # Fields are named by position and renamed to the columns: a column may be named
        # like a Python keyword.
        row_type = msgspec.defstruct(
            "CleanRow", fields,
            rename={f"c{index}": column.name for index, column in enumerate(datasource.columns)})
        return cls(row_type, times, wide)

    def read(self, line: bytes | str) -> bytes | None:
        """The event of one line, as the engine takes it; None if it is not clean."""
        try:
            event = self._decode(line)
        except _NOT_CLEAN:
            return None
        for time in self._times:
            if not _is_plain_iso(time(event)):
                return None
        for number in self._wide:
            if number(event) > _UINT64_MAX:
                return None
        return self._encoder.encode(event)

    def read_all(self, lines: list[bytes]) -> bytes | None:
        """The events of all the lines, one JSON line each; None unless all are clean."""
        try:
            events = list(map(self._decode, lines))
        except _NOT_CLEAN:
            return None
        for time in self._times:
            if not all(map(_is_plain_iso, map(time, events))):
                return None
        for number in self._wide:
            if max(map(number, events)) > _UINT64_MAX:
                return None
        return self._encoder.encode_lines(events)


def _is_plain_iso(value: Any) -> bool:
    if type(value) is not str:
        return False
    # Mockingbird's exact form (2024-06-01T12:00:00.000Z) skips the regex. Every separator
    # is checked: fromisoformat also reads other forms of that length (the week date
    # 2024-W22-6T12:00:00.000Z), which the engine cannot read as they are.
    if not (len(value) == 24 and value[4] == value[7] == "-" and value[10] == "T"
            and value[13] == value[16] == ":" and value[19] == "." and value[23] == "Z") \
            and not _ENGINE_READS_AS_IS.match(value):
        return False
    try:
        return 1900 <= dt.datetime.fromisoformat(value).year <= 2299
    except ValueError:
        return False


def is_flat(datasource: Datasource) -> bool:
    """Whether every column is read from the event's top-level key of its own name."""
    return all(column.json_keys == (column.name,) for column in datasource.columns)


def has_wide_integers(datasource: Datasource) -> bool:
    """Whether a column holds integers over 64 bits (Int128, UInt256...)."""
    return any(_WIDE_INT.search(column.type) for column in datasource.columns)


def _pick(event: Any, keys: tuple[str, ...]) -> Any:
    if len(keys) == 1:
        return event.get(keys[0], _MISSING)
    value = event
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _bad_value_error(shown: str, column: Column, bad: Bad) -> str:
    return f"value '{shown[:200]}' on column '{column.name}' {bad.reason} ({column.type})"


def _as_text(value: Any) -> str | None:
    if value is _MISSING or value is None:
        return None
    if isinstance(value, str):
        return value
    if type(value) is int:
        return str(value)  # the same digits as JSON's, without an encoder call
    if isinstance(value, float) and not math.isfinite(value):
        return json.dumps(value)  # NaN, Infinity as sent; orjson would write null
    return encode(value).decode()


@dataclass
class _Shape:
    """What the compact path needs to know of events with one set of keys."""

    tail: bytes  # the end of the encoded row: the positions of the columns it lacks
    width: int  # the last present column's position: the length of the values array
    bare: bytes  # the whole row of an event with none of the columns (no checks)
    checks: list[tuple[int, Column, Callable[[Any], Any] | None, bool]]  # present columns


class RowChecker:
    """Checks events for one datasource; build once, reuse for every request."""

    def __init__(self, datasource: Datasource):
        self.datasource = datasource
        self._columns: list[tuple[Column, tuple[str, ...], Callable[[Any], Any] | None, bool]] = []
        for column in datasource.columns:
            converter, nullable = checker_for(column.type)
            self._columns.append((column, column.json_keys, converter, nullable))
        # The same for every row, so made once: a body of rows that miss every column
        # must not format a dozen messages per row.
        self._null_error = {c.name: f"value null on column '{c.name}' is not Nullable"
                            for c in datasource.columns}
        self._missing_error = {c.name: missing_reason(c) for c in datasource.columns}
        self.clean = CleanRows.for_datasource(datasource)
        self._flat = is_flat(datasource)
        # For the compact quarantine: per set of the columns an event holds, what `_shape`
        # says. Keyed by the columns, not all the event's keys, so events with ever new
        # unknown keys share one entry.
        self._shapes: dict[frozenset[str], _Shape | None] = {}
        self._names = frozenset(column.name for column in datasource.columns)
        # orjson reads an integer over 64 bits as a float, silently losing digits, so a
        # datasource that can hold one (Int128, UInt256...) parses every line with json.
        self._loads: Callable[[bytes | str], Any] = (
            json.loads if has_wide_integers(datasource) else orjson.loads)

    def check_line(self, line: bytes | str, batch: CheckedBatch) -> None:
        if self.clean is not None:
            row = self.clean.read(line)
            if row is not None:
                batch.add_row(row)
                return
        try:
            event = self._loads(line)
        # orjson.JSONDecodeError is a ValueError; json, for wide integers, recurses into
        # nested arrays and objects, and gives up past the interpreter's depth.
        except (ValueError, RecursionError):
            event = self._loads_leniently(line, batch)
            if event is _MISSING:
                return
        if self._flat and type(event) is dict and self._check_compact(event, batch):
            return
        self.check_event(event, batch)

    def _shape(self, present: frozenset[str]) -> _Shape | None:
        missing: list[int] = []
        checks = []
        for index, (column, _, converter, nullable) in enumerate(self._columns, 1):
            if column.name in present:
                checks.append((index, column, converter, nullable))
            elif not nullable and column.default is None:
                missing.append(index)
        if not missing:
            return None
        if len(self._shapes) >= 4096:
            self._shapes.clear()
        # The end of every such row: the missing columns' positions, encoded once.
        tail = b'"' + MISSING_AT.encode() + b'":' + orjson.dumps(missing) + b"}"
        return _Shape(tail, max((check[0] for check in checks), default=0), b"{" + tail,
                      checks)

    def _check_compact(self, event: dict, batch: CheckedBatch) -> bool:
        """The checks of `check_event` for an event of a flat datasource that lacks a
        required column (so it is quarantined): only its present columns are read, and
        the row goes to `batch.compact`. False (nothing done) if it lacks none."""
        keys = self._names.intersection(event)
        try:
            shape = self._shapes[keys]
        except KeyError:
            shape = self._shapes[keys] = self._shape(keys)
        if shape is None:
            return False
        if not shape.checks:
            batch.add_bare(shape.bare)
            return True
        original: list[str | None] = [None] * shape.width
        error_at: list[int] = []
        errors: list[str] = []
        for index, column, converter, nullable in shape.checks:
            value = event[column.name]
            if value is None:
                if not nullable and column.default is None:
                    error_at.append(index)
                    errors.append(self._null_error[column.name])
                continue
            original[index - 1] = shown = value if type(value) is str else _as_text(value)
            if converter is None:
                continue
            converted = converter(value)
            if type(converted) is Bad:
                error_at.append(index)
                errors.append(_bad_value_error(shown or "", column, converted))
        if error_at:
            row = {ORIGINAL: original, ERROR_AT: error_at, "c__error": errors}
            batch.add_compact(encode(row)[:-1], b",", shape.tail)
        else:
            batch.add_compact(_ORIGINAL_KEY, encode(original), b",", shape.tail)
        return True

    def _loads_leniently(self, line: bytes | str, batch: CheckedBatch) -> Any:
        """json's reading of a line orjson refused; _MISSING, quarantined, if json refuses too.

        orjson refuses a few things json takes (NaN, Infinity, lone surrogates in a \\u
        escape), so only a line that may hold one pays for a second, slower parse: a body
        of lines that are not JSON costs one failed orjson parse per line, not two. The
        line is kept as sent, for the engine (`CheckedBatch.broken`): no message is made
        for it here, so a flood of broken lines costs little more than failing to parse.
        """
        raw = line.encode() if isinstance(line, str) else line
        if b"NaN" in raw or b"Infinity" in raw or b"\\u" in raw:
            try:
                return json.loads(line)
            except (ValueError, UnicodeDecodeError, RecursionError):
                pass
        batch.add_broken(raw.replace(b"\n", b" "))
        return _MISSING

    def check_event(self, event: Any, batch: CheckedBatch) -> None:
        if not isinstance(event, dict):
            batch.quarantined.append(
                self._whole_row_error(_as_text(event) or "", "the event is not a JSON object")
            )
            return
        row: dict[str, Any] = {}
        bad_columns: list[str] = []
        errors: list[str] = []
        for column, keys, converter, nullable in self._columns:
            value = _pick(event, keys)
            if value is _MISSING or value is None:
                if nullable:
                    row[column.name] = None
                elif column.default is None and value is None:
                    bad_columns.append(column.name)
                    errors.append(self._null_error[column.name])
                elif column.default is None:
                    bad_columns.append(column.name)
                    errors.append(self._missing_error[column.name])
                # With a DEFAULT the field is left out and the engine fills it in.
                continue
            if converter is None:
                row[column.name] = value
                continue
            converted = converter(value)
            if type(converted) is Bad:
                bad_columns.append(column.name)
                errors.append(_bad_value_error(_as_text(value) or "", column, converted))
                continue
            row[column.name] = converted
        if bad_columns:
            values = {c.name: _as_text(_pick(event, keys)) for c, keys, _, _ in self._columns}
            batch.quarantined.append(QuarantinedRow(values, bad_columns, errors))
        else:
            batch.add_row(encode(row))

    def reject(self, text: str, reason: str, batch: CheckedBatch) -> None:
        """Quarantine a whole row that cannot be read (a CSV line with too many fields)."""
        batch.quarantined.append(self._whole_row_error(text, reason))

    def _whole_row_error(self, text: str, reason: str) -> QuarantinedRow:
        values: dict[str, str | None] = {c.name: None for c in self.datasource.columns}
        # The raw line is kept in the first column so nothing sent is lost.
        first = self.datasource.columns[0].name
        values[first] = text[:65536]
        return QuarantinedRow(values, ["__row__"], [reason])


# A line the Python checks read is shaped like an object: `{...}`, blanks around it. Any
# other non-blank line cannot be an event (a lone `{`, a line cut short, `1`); the engine
# quarantines those itself, with the same test (`quarantine.EVENT_OR_BLANK_LINE`), so
# neither side touches the other's lines and a flood of them costs no Python per line.
_OBJECT_LINE = re.compile(rb"(?m)^[ \t\r]*(\{[^\n]*\})[ \t\r]*$")
# A line the sift gave back: lines end with a newline only (a line may hold a \r).
_KEPT_LINE = re.compile(rb"[^\n]+")
_REJECTED_LINE = re.compile(rb"(?m)^(?![ \t\r]*(?:\{[^\n]*\}[ \t\r]*)?$)")
WINDOW_BYTES = 1 << 20
# Rows quarantined whole in one batch: bounds their Python objects.
BATCH_ROWS = 5000
# Rows of any kind in one batch: bounds the engine's memory for one insert (about 0.5 KB
# a row while it parses them, whatever their size: 333k `{}` lines took 180 MB).
BATCH_MAX_ROWS = 100_000
# Bad lines of a piece after which its other lines are sifted by the engine first (see
# `checked_batches`).
SIFT_AFTER = 100
# The least of a body worth sifting (`checked_body`): 1 MiB of tiny lines costs Python
# about 0.2 s, twice what a sift costs before it reads a line.
SIFT_MIN_BYTES = 1 << 20
# How much of a body is sifted first, to see whether the engine can check its lines
# (`checked_body`).
SIFT_PROBE_BYTES = 1 << 20
# Quarantines the lines of a body (as sent) between two offsets that cannot be events or
# that the engine checks and finds bad; returns the others, one per line, and how many it
# quarantined (`Engine.sift_lines`, bound to a datasource and an import id).
Sift = Callable[[bytes, int, int], tuple[bytes, int]]
# The same for the rest of one piece, from an offset in it (`checked_batches`); None if
# it declines to.
SiftRest = Callable[[int], tuple[bytes, int] | None]


def as_ndjson(body: bytes) -> bytes:
    """The body as NDJSON: a body that is one pretty-printed JSON object becomes one
    line; a JSON array, one line per item; anything else stays as it is."""
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


def checked_body(checker: RowChecker, body: bytes, sift: Sift | None = None,
                 size: int = WINDOW_BYTES) -> Iterator[CheckedBatch]:
    """Check a whole body (`_checked_pieces`); runs of batches that hold good rows only
    go out as one batch, of up to `BATCH_MAX_ROWS` rows.

    Each insert costs the engine the same fixed work whatever its size, so a body of
    good rows is written in one insert, not one per piece.
    """
    joined: CheckedBatch | None = None
    for batch in _checked_pieces(checker, body, sift, size):
        if batch.quarantined_count or batch.rejected:
            if joined is not None:
                yield joined
                joined = None
            yield batch
        elif joined is None:
            joined = batch
        elif joined.row_count + batch.row_count > BATCH_MAX_ROWS:
            yield joined
            joined = batch
        else:
            joined.add_rows(bytes(batch.ndjson), batch.row_count)
    if joined is not None:
        yield joined


def _checked_pieces(checker: RowChecker, body: bytes, sift: Sift | None,
                    size: int) -> Iterator[CheckedBatch]:
    """Check a whole body (`as_ndjson`), in pieces of about `size` bytes, each cut
    after a newline (`checked_batches`). Pieces are cut as they are needed, so only one
    piece's rows exist as Python objects at a time.

    Once a piece asks for a sift, the engine sifts the next `SIFT_PROBE_BYTES` of the
    body, and then the rest of it in one call if it quarantined at least as many lines
    as it gave back: the engine takes about 0.1 s to set up its views and checks for
    each call, so a call per 1 MiB piece would cost a 10 MB flood a second. A body of
    lines only Python checks is not sifted past the probe (the sift would only add its
    cost to theirs). A rest of under `SIFT_MIN_BYTES` stays with Python: sifting a few
    hundred lines would cost a hundred times what checking them costs.
    """
    ndjson = as_ndjson(body)
    start = 0
    may_sift = sift is not None
    while start < len(ndjson):
        end = ndjson.find(b"\n", start + size)
        end = len(ndjson) if end < 0 else end
        sifted_to = 0  # where the sift stopped, if it ran

        def sift_rest(offset: int, start: int = start, end: int = end
                      ) -> tuple[bytes, int] | None:
            nonlocal sifted_to, may_sift
            begin = start + offset
            if sift is None or not may_sift or len(ndjson) - begin < SIFT_MIN_BYTES:
                return None
            may_sift = False
            # The probe takes in the rest of the piece at least.
            probe_end = ndjson.find(b"\n", max(begin + SIFT_PROBE_BYTES, end))
            sifted_to = len(ndjson) if probe_end < 0 else probe_end + 1
            # The body as it is: no copy of it.
            kept, quarantined = sift(ndjson, begin, sifted_to)
            if sifted_to < len(ndjson) and quarantined >= kept.count(b"\n"):
                more_kept, more = sift(ndjson, sifted_to, len(ndjson))
                kept, quarantined = kept + more_kept, quarantined + more
                sifted_to = len(ndjson)
            return kept, quarantined

        yield from checked_batches(checker, ndjson[start:end], sift=sift_rest)
        # After a sift, the body goes on where it stopped (the kept lines stood for the
        # rest of the piece, and past it).
        start = sifted_to if sifted_to else end + 1


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


def checked_batches(checker: RowChecker, window: bytes, rows: int = BATCH_ROWS,
                    max_rows: int = BATCH_MAX_ROWS, sift: SiftRest | None = None
                    ) -> Iterator[CheckedBatch]:
    """Check one piece of NDJSON: one batch, or more if it quarantines over `rows` rows
    whole (those are Python objects until written) or holds over `max_rows` rows. The
    other lines are left to the engine (with the last batch), so they never become Python
    objects, not even to be counted. Few large batches matter: each insert costs the
    engine about 15 ms of its own, whatever its size.

    Checking a line costs Python 1-3 µs however small it is, so a piece that has shown
    `SIFT_AFTER` bad lines (not JSON, or events that lack a required column) hands the
    rest to `sift`: the engine quarantines, in bulk, the lines that are not JSON and those
    it can check itself (see `sift`), and gives back the others.
    """
    batch = CheckedBatch()
    if checker.clean is not None:
        clean = _clean_rows(checker.clean, window, max_rows)
        if clean is not None:
            batch.add_rows(*clean)
            yield batch
            return
    read = len(window)  # the part of the window the rejected-lines view is to read
    bad = checked = 0
    # Each object line, and where it ends in the window.
    lines = ((match.group(1), match.end()) for match in _OBJECT_LINE.finditer(window))
    # The last line checked and, once it came a second time, what checking it added: the
    # sift gives each line back as many times as it came, one after the other, and a
    # line sent again gets the same outcome. (The first time it comes again it is
    # checked again, to learn that: a flood of lines all different pays nothing for it.)
    previous: bytes | None = None
    outcome: Outcome | None = None
    while (item := next(lines, None)) is not None:
        line, end = item
        checked += 1
        before = batch.broken_count + batch.compact_count + batch.bare_count
        if line != previous:
            checker.check_line(line, batch)
            previous, outcome = line, None
        elif outcome is None:
            sizes = batch.sizes()
            checker.check_line(line, batch)
            outcome = batch.outcome_since(sizes)
        else:
            batch.add_outcome(outcome)
        if batch.broken_count + batch.compact_count + batch.bare_count > before:
            bad += 1
            if bad == SIFT_AFTER and sift is not None and end < len(window):
                # The rest of the window goes as sent: the engine finds its lines that
                # cannot be events too.
                sifted = sift(end)
                if sifted is not None:
                    read = end
                    batch.sifted_count += sifted[1]
                    # One line each, read as needed: there may be a body's worth.
                    lines = ((kept.group(), -1) for kept in _KEPT_LINE.finditer(sifted[0]))
        if len(batch.quarantined) >= rows or checked >= max_rows:
            yield batch
            batch, checked = CheckedBatch(), 0
    if _REJECTED_LINE.search(window, 0, read):
        batch.rejected = window[:read]
    if batch.row_count or batch.quarantined_count or batch.rejected:
        yield batch
