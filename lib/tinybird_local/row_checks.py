"""Check events against a data source's schema before they reach the engine.

Tinybird accepts the good rows of a request and puts each bad one in
`{datasource}_quarantine` with its original values and the reason, and the request
still succeeds. To do the same we must know which row is bad and why, so each row is
checked here, column by column, and what it becomes is added to a `batches.CheckedBatch`.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import json
import math
import operator
import re
import unicodedata
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Callable

import msgspec
import orjson

from .datafiles import Column, Datasource
from .quarantine import ERROR_AT, MISSING_AT, ORIGINAL, missing_reason

if TYPE_CHECKING:
    from .batches import CheckedBatch

_MISSING = object()
_ORIGINAL_KEY = b'{"' + ORIGINAL.encode() + b'":'
_INT_TEXT = re.compile(r"^[+-]?\d+$")
_WIDE_INT = re.compile(r"\bU?Int(128|256)\b")
# ISO 8601 forms the engine reads itself: naive, or UTC with a trailing Z (Mockingbird's).
_ENGINE_READS_AS_IS = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d{1,9})?Z?$")
# The same forms in ASCII digits, in the years the engine stores (1900-2299): times the
# clean-rows reader passes on as sent, one per line, all checked in one match. Whether
# each day exists is checked after.
_PLAIN_TIMES = re.compile(r"(?:(?:19[0-9][0-9]|2[0-2][0-9][0-9])-[0-9][0-9]-[0-9][0-9][T ]"
                          r"[0-9][0-9]:[0-9][0-9]:[0-9][0-9](?:\.[0-9]{1,9})?Z?\n)*")


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
    """A row that goes to the quarantine whole, in Tinybird's form."""

    values: dict[str, str | None]  # the original values, as text
    error_columns: list[str]
    errors: list[str]


def encode(value: Any) -> bytes:
    """orjson when it can (fast); else the same with half UTF-16 pairs made U+FFFD, and
    json for what orjson still refuses (integers over 64 bits).

    Python reads `"\\ud800"` into a text that is not valid Unicode. Written as an escape,
    the engine either refuses the whole insert or keeps it in ways that depend on what
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
    values, listed when first needed, not at import: the scan is slow. (No script's
    digits lie past the first two planes.)"""
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
        """Read lines into `row_type` and check what its types cannot say.

        Args:
            row_type: the msgspec struct of a clean event, a field per column.
            times: the fields of date and time columns, whose days are checked.
            wide: the fields of UInt64 columns, checked against its upper bound.
        """
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
        # like a Python keyword. A row holds no other object, so the garbage collector
        # need not track it.
        row_type = msgspec.defstruct(
            "CleanRow", fields,
            rename={f"c{index}": column.name for index, column in enumerate(datasource.columns)},
            gc=False)
        return cls(row_type, times, wide)

    def read(self, line: bytes | str) -> bytes | None:
        """The event of one line, as the engine takes it; None if it is not clean."""
        try:
            event = self._decode(line)
        except _NOT_CLEAN:
            return None
        return self._encoder.encode(event) if self._in_range([event]) else None

    def read_all(self, lines: list[bytes]) -> bytes | None:
        """The events of all the lines, one JSON line each; None unless all are clean."""
        try:
            events = list(map(self._decode, lines))
        except _NOT_CLEAN:
            return None
        return self._encoder.encode_lines(events) if self._in_range(events) else None

    def _in_range(self, events: list[Any]) -> bool:
        """Whether each time has a plain form and names a day that exists, and each
        UInt64 is in range."""
        try:
            for time in self._times:
                # One match for every event's time: a pattern msgspec checked value by
                # value cost half of reading the lines. (A time that holds a newline
                # reads as two lines here; fromisoformat refuses it.)
                if _PLAIN_TIMES.fullmatch("\n".join(map(time, events)) + "\n") is None:
                    return False
                # Mapped in C: fromisoformat refuses a day past its month's end.
                collections.deque(map(dt.datetime.fromisoformat, map(time, events)), 0)
        except ValueError:
            return False
        return all(max(map(number, events)) <= _UINT64_MAX for number in self._wide)


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

    def check_line(self, line: bytes | str, batch: CheckedBatch, clean: bool = True) -> None:
        """Check one line into `batch`.

        Args:
            line: the line as sent.
            batch: where the row, or its quarantine row, goes.
            clean: False to skip the clean-rows reader, for a line known to lack a column.
        """
        if clean and self.clean is not None:
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
        """Check one parsed event into `batch`: its row, or its compact quarantine row.

        Each column's value is picked once. A bad event's values become text only once it
        is known to be bad, and it is written in the compact form, one short array, not a
        dozen named texts.
        """
        if not isinstance(event, dict):
            batch.quarantined.append(
                self._whole_row_error(_as_text(event) or "", "the event is not a JSON object")
            )
            return
        row: dict[str, Any] = {}
        picked: list[Any] = []
        missing_at: list[int] = []
        error_at: list[int] = []
        errors: list[str] = []
        for index, (column, keys, converter, nullable) in enumerate(self._columns, 1):
            value = event.get(keys[0], _MISSING) if len(keys) == 1 else _pick(event, keys)
            picked.append(value)
            if value is _MISSING or value is None:
                if nullable:
                    row[column.name] = None
                elif column.default is None and value is None:
                    error_at.append(index)
                    errors.append(self._null_error[column.name])
                elif column.default is None:
                    missing_at.append(index)
                # With a DEFAULT the field is left out and the engine fills it in.
                continue
            if converter is None:
                row[column.name] = value
                continue
            converted = converter(value)
            if type(converted) is Bad:
                error_at.append(index)
                errors.append(_bad_value_error(_as_text(value) or "", column, converted))
                continue
            row[column.name] = converted
        if not (missing_at or error_at):
            batch.add_row(encode(row))
            return
        original = [value if type(value) is str else _as_text(value) for value in picked]
        batch.add_compact(encode({ORIGINAL: original, ERROR_AT: error_at, "c__error": errors,
                                  MISSING_AT: missing_at}), lacking=bool(missing_at))

    def reject(self, text: str, reason: str, batch: CheckedBatch) -> None:
        """Quarantine a whole row that cannot be read (a CSV line with too many fields).

        Args:
            text: the row as sent, kept in the first column.
            reason: why it cannot be read.
            batch: the batch the quarantined row goes to.
        """
        batch.quarantined.append(self._whole_row_error(text, reason))

    def _whole_row_error(self, text: str, reason: str) -> QuarantinedRow:
        values: dict[str, str | None] = {c.name: None for c in self.datasource.columns}
        # The raw line is kept in the first column so nothing sent is lost.
        first = self.datasource.columns[0].name
        values[first] = text[:65536]
        return QuarantinedRow(values, ["__row__"], [reason])

