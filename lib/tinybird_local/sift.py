"""The engine's pass over the rest of a body that is mostly bad lines: the sift.

Checking a line in Python costs a few µs however small it is (find it, parse it, look
up its keys, format a reason, write the row), so 10 MB of `{}` (3.3 million lines) or
of `{"age":"x<n>"}` cost the server five to nine times what 10 MB of good bookings cost.
When a piece of a body has shown many bad lines, `ingest.checked_body` hands the rest
of the body to `Engine.sift_lines`, as sent (`LineAsString`), and the engine:

- groups alike lines, so a line sent a million times is looked at once;
- quarantines the lines that cannot be events, and the object lines that are not JSON,
  as sent;
- checks the JSON objects it can check exactly as `ingest.RowChecker` would, and writes
  those that lack a required column as compact quarantine rows, with the same values
  and reasons;
- leaves every other line for the Python checks, which read them back.

The engine's checks are a subset of Python's, restated in SQL: a line is the engine's
only if its columns hold strings, integers (of 19 digits or more only in a flat object,
read as orjson reads them: past 64 bits as floats), other numbers (shown as
orjson writes them: the engine writes 1e16 in digits), arrays and objects (their
numbers shown so too) whose texts the engine writes as orjson does, booleans or nulls
(what every JSON parser reads alike; a column given twice counts for its last value,
and half a UTF-16 pair is U+FFFD, as in Python), or NaN, Infinity and -Infinity (which
Python's json reads, and the engine reads as texts of its own); and only for values
whose outcome the engine can tell for sure, in columns of string, integer, float,
boolean, date, date and time, UUID and array types (a text is an integer or a float as
Python reads one, in any script; a date and time is good if fromisoformat reads it, in
any of its forms, and its day, time and offset exist, within the years the engine
stores). Anything else, and every line that may be good, goes back to Python as sent,
so the sift changes what a request costs, never what it stores:
tests/server/test_sift.py writes random events both ways and compares what is stored.

This module only says what to create; `Engine` runs it.
"""

from __future__ import annotations

import functools
import re

from .datafiles import Column, Datasource
from .quarantine import (
    ERROR_AT,
    MISSING_AT,
    ORIGINAL,
    REPEAT,
    compact_rows_name,
    rejected_rows_name,
)
from .row_checks import (
    checker_for,
    decimal_digits,
    has_wide_integers,
    is_flat,
    string_value,
    unwrap_type,
)
from .sql_template import quote_identifier, quote_string

# What json reads and orjson and the engine refuse (`RowChecker._loads_leniently`): NaN,
# Infinity and -Infinity as values. The engine reads them as texts it alone writes: each
# such word outside a string becomes "\u0003" and the word. A line that is JSON that way
# is JSON to Python if no such text is a key; a line that already holds a \u0003 escape
# goes back to Python.
_NON_FINITE_MARK = r"\x03"  # in SQL: the character "\u0003" is read as
# A JSON string, as a SQL regex literal's text.
_JSON_STRING = r'"(?:[^"\\\\]|\\\\.)*"'
_TOKENS = f"""extractAll(whole, '{_JSON_STRING}|[^"]+|"')"""  # strings, and the rest
_NON_FINITE_BY_TOKENS = (
    f"arrayStringConcat(arrayMap(s -> if(startsWith(s, '\"'), s, replaceRegexpAll(s, "
    r"""'-?Infinity|NaN', '"\\\\u0003\\0"')), """ f"{_TOKENS}))")
# The same in one pass, twice as fast: a string stays as it is, followed by \x04\x05
# (dropped after), and a word becomes \x04word\x05, whose marks then become "\u0003
# and ". Held to the token rewrite for a line without those marks (over a million random
# lines of quotes, escapes and the words, all equal); a line with them is rewritten by
# tokens.
_NON_FINITE_AS_TEXT = (
    "if(position(whole, '\\x04') = 0 AND position(whole, '\\x05') = 0, "
    "replaceAll(replaceAll(replaceAll(replaceRegexpAll(whole, "
    f"'({_JSON_STRING})|(-?Infinity|NaN)', '\\\\1\\x04\\\\2\\x05'), '\\x04\\x05', ''), "
    "'\\x04', '\"\\\\u0003'), '\\x05', '\"'), " f"{_NON_FINITE_BY_TOKENS})")
_NON_FINITE_TEXTS = ", ".join(f"'{_NON_FINITE_MARK}{word}'"
                              for word in ("NaN", "Infinity", "-Infinity"))
_NON_FINITE_KEY = r"""match(fixed, '"\\\\u0003(NaN|-?Infinity)"[ \\t\\r]*:')"""
# A line as Python ends up storing it where it has half a UTF-16 pair: json reads
# "\ud800", and `ingest.encode` writes it as U+FFFD. In SQL: escaped backslashes and
# whole pairs are set aside, every other escape of a half becomes \ufffd, and the two are
# put back (\x01 and \x02 cannot be in a line that is JSON).
_WHOLE_CHARACTERS = (
    r"replaceAll(replaceAll(replaceRegexpAll(replaceRegexpAll(replaceRegexpAll(sent, "
    r"'\\\\\\\\', '\x01'), "
    r"'\\\\(u[dD][89abAB][0-9a-fA-F]{2})\\\\(u[dD][c-fC-F][0-9a-fA-F]{2})', "
    r"'\x02\\1\x02\\2'), "
    r"'\\\\u[dD][89a-fA-F][0-9a-fA-F]{2}', '\\\\ufffd'), '\x02', '\\'), '\x01', '\\\\')")
# How Python's fromisoformat (3.11, in C) reads the time after a day (YYYY-MM-DD) and any
# one character: hours, minutes and seconds of two digits each, with colons or none, then
# a fraction of a second of any length (after . or , or a third colon, or, without
# colons, nothing), all optional but the hours; then Z, or + or - and an offset of the
# same form. Before an offset it is laxer, as its code is: a component may be followed
# by any one byte, and a fraction of over six digits by anything. The groups: hours,
# minutes and seconds with colons, minutes and seconds without.
_CLOCK = (r"^([0-9]{2})(?:[.,][0-9]+|:([0-9]{2})(?:[.,][0-9]+|:([0-9]{2})(?:[:.,][0-9]+)?)?"
          r"|([0-9]{2})(?:[.,][0-9]+|([0-9]{2})(?:[.,][0-9]+|[0-9]{2,})?)?)?$")
# A day, any one character, a time, and Z or an offset: the groups are the day, the time
# and the zone (what follows the first Z, + or - after the day).
_MOMENT = "^([0-9]{4}-[0-9]{2}-[0-9]{2}).([^Z+-]*)(.*)$"
_BYTE, _FRACTION_BEFORE_ZONE = r"[\\x01-\\x7f]", r"(?:[0-9]{1,5}|[0-9]{6}.*)"
_CLOCK_BEFORE_ZONE = (
    rf"^([0-9]{{2}})(?:{_BYTE}|[.,]{_FRACTION_BEFORE_ZONE}|:([0-9]{{2}})(?:{_BYTE}|"
    rf"[.,]{_FRACTION_BEFORE_ZONE}|:([0-9]{{2}})(?:{_BYTE}|[:.,]{_FRACTION_BEFORE_ZONE})?)?"
    rf"|([0-9]{{2}})(?:{_BYTE}|[.,]{_FRACTION_BEFORE_ZONE}|([0-9]{{2}})(?:{_BYTE}|"
    rf"[.,]{_FRACTION_BEFORE_ZONE}|[0-9]{{2,5}}|[0-9]{{6}}.*)?)?)?$")
# The days fromisoformat reads (Python 3.11, in C) at the start of a text: YYYY-MM-DD,
# YYYYMMDD, and ISO weeks (YYYY-Www, YYYY-Www-D, YYYYWww, YYYYWwwD), of any year from 1.
# A day's form (`_time_day_form`, `_date_day_form`) is a tuple: where the separator
# before the time is (in bytes), the form (0: none, 1: a month and a day, 2: a week and
# a day of it), and the day's digits (YYYY-MM-DD, or YYYYwwd); `_day` reads it.
_NO_DAY = "tuple(0, 0, '')"
_YEAR_MONTH_DAY, _YEAR_WEEK_DAY = 1, 2
# date.toordinal() of 1900-01-01, 2299-12-31 (the years the engine stores) and
# 9999-12-31 (the last day Python has).
_FIRST_STORED, _LAST_STORED, _LAST_DAY = 693596, 839692, 3652059


def _byte(text: str, at: int) -> str:
    """The byte of `text` at `at`, counted from 0 as fromisoformat's C code counts."""
    return f"substring({text}, {at + 1}, 1)"


def _month_day(text: str, separator: int, month_at: int, day_at: int) -> str:
    """The form of a year, a month and a day read at those bytes."""
    return (f"tuple({separator}, {_YEAR_MONTH_DAY}, concat(substring({text}, 1, 4), '-', "
            f"substring({text}, {month_at + 1}, 2), '-', substring({text}, {day_at + 1}, 2)))")


def _week_day(text: str, separator: int | str, week_at: int, day_at: int | None) -> str:
    """The form of a year, a week and a day of it read at those bytes (1 if not given)."""
    day = "'1'" if day_at is None else _byte(text, day_at)
    return (f"tuple(toUInt8({separator}), {_YEAR_WEEK_DAY}, concat(substring({text}, 1, 4), "
            f"substring({text}, {week_at + 1}, 2), {day}))")


def _time_day_form(s: str) -> str:
    """The day at the start of a text as datetime.fromisoformat reads it: it first finds
    the separator before the time by the text's length and bytes 4 to 10
    (`_find_isoformat_datetime_separator`), then reads the day before it
    (`parse_isoformat_date`), which reads past the separator where its form says so.
    For a text that starts with a year of four ASCII digits and holds no NUL or U+FFFD."""
    length, week_digits = f"length({s})", f"length(extract(substring({s}, 8), '^[0-9]*'))"
    week = f"match({s}, '^[0-9]{{4}}W[0-9]{{2}}')"
    dashed_week = f"match({s}, '^[0-9]{{4}}-W[0-9]{{2}}')"
    digit = "match({}, '^[0-9]')"
    # YYYYWww: the separator after the digits that follow, if they are under two; else
    # after 7 if they are an odd number, after 8 if even.
    week_separator = (f"multiIf(7 + {week_digits} < 9, 7 + {week_digits}, "
                      f"{week_digits} % 2 = 1, 7, 8)")
    return (
        # YYYY-MM-DD first, the form of nearly every time sent.
        f"multiIf(match({s}, '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}'), "
        f"tuple(10, {_YEAR_MONTH_DAY}, substring({s}, 1, 10)), "
        f"{length} < 7 OR {_byte(s, 4)} = '-' AND {_byte(s, 5)} != 'W', {_NO_DAY}, "
        f"{length} = 7, if({week}, {_week_day(s, 7, 5, None)}, {_NO_DAY}), "
        f"{_byte(s, 4)} = '-', multiIf(NOT {dashed_week} OR {length} = 9 AND "
        f"{_byte(s, 8)} = '-', {_NO_DAY}, "
        # YYYY-Www-D, unless a digit follows it: then YYYY-Www and a time after the -.
        f"{length} > 8 AND {_byte(s, 8)} = '-' AND NOT ({length} > 10 AND "
        f"{digit.format(_byte(s, 10))}), if({digit.format(_byte(s, 9))}, "
        f"{_week_day(s, 10, 6, 9)}, {_NO_DAY}), {_week_day(s, 8, 6, None)}), "
        f"{_byte(s, 4)} = 'W', multiIf(NOT {week}, {_NO_DAY}, {week_separator} = 8, "
        f"{_week_day(s, 8, 5, 7)}, {_week_day(s, week_separator, 5, None)}), "
        f"match({s}, '^[0-9]{{8}}'), {_month_day(s, 8, 4, 6)}, {_NO_DAY})")


def _date_day_form(u: str) -> str:
    """The day of a text of up to ten characters as date.fromisoformat reads it: only
    texts of 7, 8 or 10 bytes, read by `parse_isoformat_date` (which reads no further
    than its form says). For a text that holds no NUL or U+FFFD."""
    length = f"length({u})"
    return (
        f"multiIf({length} NOT IN (7, 8, 10), {_NO_DAY}, "
        f"match({u}, '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}'), "
        f"tuple(10, {_YEAR_MONTH_DAY}, substring({u}, 1, 10)), "
        f"match({u}, '^[0-9]{{4}}W[0-9]{{2}}'), if({length} = 7, "
        f"{_week_day(u, 7, 5, None)}, if(match({_byte(u, 7)}, '^[0-9]'), "
        f"{_week_day(u, 8, 5, 7)}, {_NO_DAY})), "
        f"match({u}, '^[0-9]{{4}}-W[0-9]{{2}}'), multiIf({length} = 8, "
        f"{_week_day(u, 8, 6, None)}, match({u}, '^.{{8}}-[0-9]'), "
        f"{_week_day(u, 10, 6, 9)}, {_NO_DAY}), "
        f"match({u}, '^[0-9]{{8}}'), {_month_day(u, 8, 4, 6)}, {_NO_DAY})")


def _leap(year: str) -> str:
    return f"({year} % 4 = 0 AND {year} % 100 != 0 OR {year} % 400 = 0)"


# What `_day` makes of a day that exists outside the years the engine stores: a day of
# no month.
_UNSTORED_DAY = "0000-00-00"


def _day(f: str) -> str:
    """What a day's form `f` is: the day as YYYY-MM-DD (`_UNSTORED_DAY` outside the years
    the engine stores), or '' if it does not exist, as Python's date says: a day of its
    month (February has 29 in leap years), or a day of an ISO week (the 53rd only in
    years that have one: those that start on a Thursday, or leap years that start on a
    Wednesday) whose date is before the year 10000. The engine's own reading decides for
    a month's day within its years; arithmetic, for the rest."""
    digits = f"{f}.3"

    def number(at: int, length: int) -> str:
        return f"toInt64(toUInt16OrZero(substring({digits}, {at}, {length})))"

    year = number(1, 4)
    month, month_day = number(6, 2), number(9, 2)
    month_days = _array(["31", f"28 + {_leap(year)}", "31", "30", "31", "30", "31", "31", "30",
                         "31", "30", "31"])
    month_day_exists = (f"{year} >= 1 AND {month} BETWEEN 1 AND 12 AND {month_day} >= 1 AND "
                        f"{month_day} <= {month_days}[{month}]")
    # (The engine reads days of any year into a Date32, and some that do not exist.)
    stored = (f"substring({digits}, 1, 4) BETWEEN '1900' AND '2299' AND "
              f"toString(toDate32OrNull({digits})) = {digits}")
    by_month = (f"multiIf({stored}, {digits}, {year} NOT BETWEEN 1900 AND 2299 AND "
                f"{month_day_exists}, '{_UNSTORED_DAY}', '')")
    # The ordinal of the year's 1 January (`n`), its weekday (`w`, 0: Monday), and the
    # ordinal of the day (`o`), each bound once by a lambda of one item: written out,
    # the year was read 32 times, which cost every check 0.1 s to plan.
    week, week_day = number(5, 2), number(7, 1)
    new_year = "((y - 1) * 365 + intDiv(y - 1, 4) - intDiv(y - 1, 100) + intDiv(y - 1, 400) + 1)"
    day = f"(n - w + if(w > 3, 7, 0) + ({week} - 1) * 7 + {week_day} - 1)"
    week_day_exists = (f"y >= 1 AND {week_day} BETWEEN 1 AND 7 AND ({week} BETWEEN 1 AND 52 "
                       f"OR {week} = 53 AND (w = 3 OR w = 2 AND {_leap('y')})) "
                       f"AND o <= {_LAST_DAY}")
    stored_day = (f"if(o BETWEEN {_FIRST_STORED} AND {_LAST_STORED}, "
                  f"toString(toDate32('1900-01-01') + (o - {_FIRST_STORED})), "
                  f"'{_UNSTORED_DAY}')")
    by_week = (f"arrayMap(y -> arrayMap(n -> arrayMap(w -> arrayMap(o -> "
               f"if({week_day_exists}, {stored_day}, ''), [{day}])[1], "
               f"[(n + 6) % 7])[1], [{new_year}])[1], [{year}])[1]")
    return (f"multiIf({f}.2 = {_YEAR_MONTH_DAY}, {by_month}, {f}.2 = {_YEAR_WEEK_DAY}, "
            f"{by_week}, '')")


def _read_day(k: str, s: str) -> str:
    """A time's or a date's text `s` (of the column kind `k`) from its day on, as
    fromisoformat reads it: the day as YYYY-MM-DD (`_UNSTORED_DAY` outside the years the
    engine stores) and, for a time, the rest of the text from the separator on; '' if it
    holds no day that exists. A text of a day YYYY-MM-DD within those years is its own
    reading (nearly every one sent: the others cost the engine a day's form and
    arithmetic, `_day`, which are bound to names by lambdas of one item so that each is
    worked out once)."""
    day = f"substring({s}, 1, 10)"
    common = (f"match({s}, '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}') AND "
              f"substring({s}, 1, 4) BETWEEN '1900' AND '2299'")
    read = f"if(y = '', '', concat(y, if({k} = {_TIME}, substring({s}, f.1 + 1), '')))"
    form = f"if({k} = {_TIME}, {_time_day_form(s)}, {_date_day_form(s)})"
    return (f"if({common}, if(toString(toDate32OrNull({day})) = {day}, {s}, ''), "
            f"arrayMap(f -> arrayMap(y -> {read}, [{_day('f')}])[1], [{form}])[1])")


def _mantissa(digits: str) -> str:
    """d.ddd of a run of significant digits (d alone if there is one)."""
    return (f"concat(substring({digits}, 1, 1), if(length({digits}) > 1, "
            f"concat('.', substring({digits}, 2)), ''))")


def _as_orjson_writes(t: str) -> str:
    """The Double the engine wrote as `t`, as orjson writes it: a whole number below 1e16
    with .0 (1 becomes 1.0), from 1e16 on with an exponent (the engine writes
    10000000000000000, orjson 1e+16), 0.000001 to 0.00001 with one (1e-6), and an
    exponent with its sign (1e+300); fractions otherwise as they are. Checked against
    orjson for 20,000 numbers of every magnitude."""
    sign = f"if(startsWith({t}, '-'), '-', '')"
    unsigned = f"if(startsWith({t}, '-'), substring({t}, 2), {t})"
    significant = f"trim(TRAILING '0' FROM {unsigned})"
    # (A fraction without an exponent, the most common Double, is decided first, without
    # a regex.)
    return (
        f"multiIf(position({t}, '.') > 0 AND position({t}, 'e') = 0 AND "
        f"position({unsigned}, '0.00000') != 1, {t}, "
        f"match({t}, '^-?[0-9]{{1,16}}$'), concat({t}, '.0'), "
        f"match({t}, '^-?[0-9]{{17,}}$'), concat({sign}, {_mantissa(significant)}, 'e+', "
        f"toString(length({unsigned}) - 1)), "
        f"match({t}, '^-?0[.]00000[1-9]'), concat({sign}, "
        f"{_mantissa(f'substring({unsigned}, 8)')}, 'e-6'), "
        f"match({t}, 'e[0-9]'), replaceOne({t}, 'e', 'e+'), {t})")


# A JSON number, and any token of JSON text (a string, a number, a run of other
# characters, or a -), as SQL regex literals' texts.
_JSON_NUMBER = "-?[0-9][0-9.eE+-]*"
_JSON_TOKEN = f'{_JSON_STRING}|{_JSON_NUMBER}|[^"0-9-]+|-'


def _without_strings(text: str) -> str:
    """A JSON text with each of its strings emptied."""
    return f"replaceRegexpAll({text}, '{_JSON_STRING}', '\"\"')"


def _numbers_in(text: str) -> str:
    """The numbers of a JSON text, in order (those in its strings left out)."""
    return f"extractAll({_without_strings(text)}, '{_JSON_NUMBER}')"


def _nested_as_orjson_writes(t: str, sent: str, before: str) -> str:
    """An array or object the engine wrote as `t`, with its numbers as orjson writes
    them: its numbers as the line has them are those of `sent` past the first `before`,
    in order; each with a fraction or an exponent there is a float to Python, which
    orjson writes as such (the engine writes 1.0 as 1)."""
    tokens = f"extractAll({t}, '{_JSON_TOKEN}')"
    is_number = "match(x, '^-?[0-9]')"
    # Written alike whatever its numbers were sent as (most arrays of fractions): no text
    # in it, and every number with a fraction, without an exponent, and not 0.00000d
    # (the only fractions `_as_orjson_writes` changes).
    alike = f"NOT match({t}, '\"|[eE]|0[.]00000|(^|[^0-9.])[0-9]+([^0-9.]|$)')"
    return (f"if({alike}, {t}, arrayStringConcat(arrayMap((x, i) -> if({is_number} AND "
            f"match({sent}[{before} + i], '[.eE]'), {_as_orjson_writes('x')}, x), {tokens}, "
            f"arrayCumSum(arrayMap(x -> {is_number}, {tokens})))))")


# Why a value is bad (`checked_rows_sql`): its index in `_REASONS`, or these two, which
# have their own words (0: it is not bad).
_REASONS = ["", "", "", "is not an integer", "is not a date and time",
            "is not an ISO 8601 date and time", "is not a number", "is not a boolean",
            "is not a date", "is not a date (YYYY-MM-DD)", "is not a UUID", "is not an array",
            "has a null item", "is out of the supported date range"]
_NULL, _OUT_OF_RANGE = 1, 2


def _reason(words: str) -> int:
    return _REASONS.index(words)


# The arrays a value's checks read (`checked_rows_sql`), and their names in its lambdas.
_VALUE_ARRAYS = ("positions, kinds, types, texts, values, nested, stripped, numbers, days, "
                 "moments, clocks, offsets")
_EACH_VALUE = "(p, k, y, t, v, w, s, n, d, m, c, o)"
# Lines shorter than this are read alike by every JSON parser, whatever they nest.
_NESTED_LINE_BYTES = 1000
# What Python's str.strip() removes at either end of a text (the characters
# str.isspace() calls space), as a SQL regex literal.
_SPACES = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
_STRIPPED_AT_ENDS = quote_string(f"^[{_SPACES}]+|[{_SPACES}]+$")
# What float() strips: the same, but for the ASCII separators \x1c-\x1f.
_FLOAT_SPACES = "".join(c for c in _SPACES if not "\x1c" <= c <= "\x1f")
_FLOAT_STRIPPED_AT_ENDS = quote_string(f"^[{_FLOAT_SPACES}]+|[{_FLOAT_SPACES}]+$")


@functools.cache
def _digit_tables() -> tuple[str, str]:
    """The decimal digits of every script, which `ingest._int_checker` and `float()` read,
    and their values, as SQL literals for `translateUTF8`."""
    digits = decimal_digits()
    return (quote_string("".join(d for d, _ in digits)),
            quote_string("".join(str(value) for _, value in digits)))


_INT_TYPE = re.compile(r"^(U?)Int(8|16|32|64)$")
# -2^63 as a float, as the engine writes it.
_LEAST_INT64_AS_WRITTEN = "-9223372036854776000"


def sift_names(ds: Datasource) -> tuple[str, str]:
    """The Null table that takes lines to sift, and the Memory table of those kept."""
    return f"_tb_local_{ds.name}_sift", f"_tb_local_{ds.name}_sifted"


# The sift's views (`sift_sql`); `rejected`, `rejected_count`, `lenient`, `broken` and
# `checked` were made by earlier versions, and are dropped.
_VIEWS = ("lines", "rejected", "rejected_count", "lenient", "compact", "compact_count",
          "kept", "broken", "checked")
# Rows the check writes at a time (`check_sql`: it reads the sifted lines one insert's
# worth at a time).
CHECK_ROWS = 16384


def _stage_names(ds: Datasource) -> tuple[str, str]:
    """The table of the lines sifted, grouped, and the Null table of checked lines."""
    return f"_tb_local_{ds.name}_sift_lines", f"_tb_local_{ds.name}_sift_checked"


def _buffer_name(ds: Datasource) -> str:
    """The Buffer table in front of the compact rows (`sift_sql`)."""
    return f"_tb_local_{ds.name}_sift_compact_rows"


# The compact rows the Buffer holds before it writes them (about 250,000 of tiny lines).
BUFFER_BYTES = 32 << 20


def engine_checks(ds: Datasource) -> bool:
    """Whether the engine can check events of `ds` at all: `RowChecker`'s compact path
    is for flat datasources only, and a schema with integers over 64 bits is parsed by
    json, not orjson, in Python."""
    return is_flat(ds) and not has_wide_integers(ds)


# What the engine knows of a column's check (`ingest.checker_for`), by its type.
_OTHER, _INTEGER, _TEXT, _TIME, _FLOAT, _BOOL, _DATE, _UUID = range(8)
# Arrays: of other items (only a value that is not an array is the engine's), of texts
# (every item is taken but null), and of nullable texts (every array is taken).
_ARRAY, _TEXT_ARRAY, _ANY_ARRAY = 8, 9, 10
_ARRAY_TYPE = re.compile(r"^Array\((.*)\)$")


def _kind(column: Column) -> tuple[int, int, int]:
    """The check's kind, and the range of an integer column."""
    base, _ = unwrap_type(column.type)
    converter, _ = checker_for(column.type)
    m = _INT_TYPE.match(base)
    if m:
        bits, signed = int(m.group(2)), not m.group(1)
        if signed:
            return _INTEGER, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        return _INTEGER, 0, 2**bits - 1
    if converter is string_value or converter is None:
        return _TEXT, 0, 0  # every value is taken, shown as text
    if base.startswith("DateTime"):
        return _TIME, 0, 0
    m = _ARRAY_TYPE.match(base)
    if m:
        inner, nullable = checker_for(m.group(1))
        if inner is not string_value and inner is not None:
            return _ARRAY, 0, 0
        return (_ANY_ARRAY if nullable else _TEXT_ARRAY), 0, 0
    by_type = {"Float32": _FLOAT, "Float64": _FLOAT, "Bool": _BOOL, "Date": _DATE,
               "Date32": _DATE, "UUID": _UUID}
    return by_type.get(base, _OTHER), 0, 0  # _OTHER: only the Python checks know


def _array(values: list[str]) -> str:
    return f"[{', '.join(values)}]"


def checked_rows_sql(ds: Datasource, table: str, where: str) -> str:
    """A SELECT over the lines of `table` that are `where` (JSON objects as Python reads
    them, `_WHOLE_CHARACTERS` and `_NON_FINITE_AS_TEXT` applied, each once with how many
    times it came, `repeat`): whether the engine checks the line (`checked`) and, if it
    does, its compact quarantine row.

    The checks run over the keys each line holds, not over every column: the engine
    evaluates an expression for every row, so per-column expressions cost a flood of `{}`
    the width of the schema (about 1.7 µs a line for twelve columns, against 0.5 µs).
    The engine also works out an expression once for each time it is written in a lambda,
    so what several checks read of a value is worked out in a stage before them; and a
    message in each branch of the checks cost it even for values that took no branch
    (1.6 s against 1.05 s for 10 MB of Arabic-digit texts), so a bad value's reason is a
    number until its one message is made.
    """
    kinds = [_kind(column) for column in ds.columns]
    required = [str(i) for i, column in enumerate(ds.columns, 1)
                if not unwrap_type(column.type)[1] and column.default is None]

    def each(values: list[str]) -> str:
        """The value for the column at position p (a literal array: a CAST would be
        worked out anew each time the view runs)."""
        return _array(values) + "[p]"

    # Lows fit Int64 and highs UInt64: one array of both would be of neither type.
    low, high = each([str(lo) for _, lo, _ in kinds]), each([str(hi) for _, _, hi in kinds])
    out_of_range = each([quote_string(f"is out of range [{lo}, {hi}]") for _, lo, hi in kinds])
    null_error = each([quote_string(f"value null on column '{c.name}' is not Nullable"
                                    if str(i) in required else "")
                       for i, c in enumerate(ds.columns, 1)])
    on_column = each([quote_string(f"' on column '{c.name}' ") for c in ds.columns])
    of_type = each([quote_string(f" ({c.type})") for c in ds.columns])

    def message(shown: str, reason: str) -> str:
        """`ingest._bad_value_error`, in SQL."""
        return (f"concat('value \\'', substringUTF8({shown}, 1, 200), {on_column}, {reason}, "
                f"{of_type})")

    # `JSONType`'s names: exact, where a Dynamic value's type depends on the other rows.
    is_text, is_int, is_bool, is_null = "y = 'String'", "y = 'Int64'", "y = 'Bool'", "y = 'Null'"
    # NaN, Infinity, -Infinity: Python reads them as floats (and never as integers).
    is_non_finite = "y = 'NonFinite'"
    # A number with a fraction or an exponent, written as orjson writes it (`texts`).
    is_double = "y = 'Double'"
    # An array or object the engine writes as orjson does: the engine writes texts as
    # orjson does but for two things (U+2028 and U+2029 escaped, and hex letters of
    # \\u escapes in capitals), keeps a key given twice where orjson keeps the last
    # (the engine's text has its keys decoded, so alike keys are written alike), and
    # holds NaN and infinities as texts (`_NON_FINITE_AS_TEXT`), which orjson writes as
    # null. `nested_alike` says the rest of the line allows it.
    # (Each test only where it may fail: a text with no \\u escape, or of one key at
    # most, needs no regex; the keys are read once, bound by a lambda of one item.)
    keys_in = f"extractAll(t, '{_JSON_STRING}:')"
    nested_alike_text = ("(position(t, '\\\\u') = 0 OR "
                         "NOT match(t, '\\\\\\\\u(?:[0-9a-f]{0,3}[A-F]|202[89]|0003)')) AND "
                         "(countSubstrings(t, '\":') <= 1 OR "
                         f"arrayMap(x -> length(x) = length(arrayDistinct(x)), [{keys_in}])[1])")
    is_nested = "w"  # `nested_alike_text`, worked out once for each value (`prepared`)

    def in_range_of(value: str) -> str:
        return f"toInt128OrNull({value}) BETWEEN {low} AND {high}"

    double_value = f"if(v = '{_LEAST_INT64_AS_WRITTEN}', '{-2**63}', v)"

    # A text as str.strip() leaves it (`s`; float() strips a little less), its digits
    # written in ASCII (`n`): both worked out once for each value (`prepared`, `read`).
    digits_from, digits_to = _digit_tables()
    digits = "n"
    # Such a text of digits, with a sign or not: its digits past leading zeros, and those
    # with its sign.
    # (Trimmed, not replaced by a regex with a group: that cost 10 MB of Arabic-digit
    # texts 0.4 s.)
    unsigned = f"trim(LEADING '0' FROM trim(LEADING '+-' FROM {digits}))"
    significant = f"if({unsigned} = '', '0', {unsigned})"
    signed_significant = f"concat(if(startsWith({digits}, '-'), '-', ''), {significant})"
    # A date and time as Python reads it (`ingest._datetime`: stripped, then
    # fromisoformat): a day in one of its forms that exists (`_read_day`), alone or
    # followed by any one character and a time (`_CLOCK`) whose time of day and UTC
    # offset exist; bad if its day's year is outside 1900-2299. Not decided by the engine
    # for a day at either end of those years with an offset (Python checks the year after
    # the move to UTC too), nor for a text with NUL (C's end of text) or U+FFFD (what the
    # engine makes of half a UTF-16 pair, which Python reads as a separator, and refuses
    # elsewhere) in it. Its parts are worked out once for each value: the text from its
    # day on (`d`), its day, time and zone (`m`), the time's parts (`c`) and the
    # offset's (`o`).
    tt = "s"
    has_offset = "substring(m[3], 1, 1) IN ('+', '-')"
    no_nul = f"NOT match({tt}, '[\\\\x00\\\\x{{FFFD}}]')"

    def hours_minutes_seconds(parts: str) -> tuple[str, str, str]:
        return (f"{parts}[1]", f"if({parts}[2] != '', {parts}[2], {parts}[4])",
                f"if({parts}[3] != '', {parts}[3], {parts}[5])")

    hours, minutes, seconds = hours_minutes_seconds("c")
    offset = " + ".join(f"toUInt32OrZero({part}) * {unit}" for part, unit in zip(
        hours_minutes_seconds("o"), (3600, 60, 1), strict=True))
    time_decided = (f"{no_nul} AND NOT ({has_offset} AND "
                    "substring(d, 1, 10) IN ('1900-01-01', '2299-12-31'))")
    # Every form fromisoformat reads starts with a year of four ASCII digits.
    no_year = f"NOT match({tt}, '^[0-9]{{4}}')"
    # Python takes any minutes in an offset under a day: +02:60 is +03:00.
    good_time = (f"(length(d) = 10 OR notEmpty(c) AND {hours} < '24' AND "
                 f"{minutes} < '60' AND {seconds} < '60' AND (m[3] IN ('', 'Z') OR "
                 f"{has_offset} AND notEmpty(o) AND {offset} < 86400))")
    # A text as float() reads it (`ingest._float`): stripped, digits of any script, and
    # NaN as a number only if written nan in any case, with nothing around it. float()
    # also takes underscores between digits: such texts are left to Python.
    number = "n"
    float_text = (f"match({number}, '^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?$') "
                  f"OR match({number}, '(?i)^[+-]?inf(inity)?$') OR lower(t) = 'nan'")
    not_number = (f"{is_bool} OR {is_nested} OR {is_non_finite} AND t = 'NaN' OR "
                  f"{is_text} AND NOT ({float_text})")
    # A text as `ingest._bool` reads it, or a number that equals 0 or 1.
    boolean = (f"{is_bool} OR {is_int} AND t IN ('0', '1') OR {is_double} AND "
               f"t IN ('0.0', '-0.0', '1.0') OR {is_text} AND lower(t) IN "
               "('true', 'false', '0', '1')")
    # The day `ingest._date` reads: the first ten characters of the stripped text (`s`
    # for a date column), in date.fromisoformat's forms, that exists (`_read_day`, `d`),
    # in any year; not decided by the engine for a text with NUL or U+FFFD in it.
    day_decided = f"NOT match({tt}, '^[0-9]{{4}}') OR {no_nul}"
    good_day = "d != ''"
    # The 32 hex digits uuid.UUID reads from a text (`ingest._uuid`); int() reads more
    # than hex digits (signs, blanks, underscores), which is left to Python.
    uuid_hex = ("replaceAll(trim(BOTH '{}' FROM replaceAll(replaceAll(t, 'urn:', ''), "
                "'uuid:', '')), '-', '')")
    is_uuid = f"match({uuid_hex}, '^[0-9a-fA-F]{{32}}$')"
    # Whether the engine can tell the outcome of this value's check...
    decided = (
        f"multiIf(p = 0 OR {is_null}, 1, "
        f"NOT ({is_text} OR {is_int} OR {is_bool} OR {is_double} OR {is_non_finite} OR "
        f"{is_nested}), 0, "
        f"k = {_TEXT}, 1, "
        f"k = {_INTEGER}, 1, "
        f"k = {_TIME}, NOT {is_text} OR NOT match(t, '[0-9]') OR {no_year} OR {time_decided}, "
        f"k = {_FLOAT}, NOT {is_text} OR position(t, '_') = 0, "
        f"k = {_BOOL}, 1, "
        f"k = {_DATE}, NOT {is_text} OR {day_decided}, "
        f"k = {_UUID}, NOT {is_text} OR lengthUTF8({uuid_hex}) != 32 OR {is_uuid}, "
        f"k = {_ARRAY}, y != 'Array', k IN ({_TEXT_ARRAY}, {_ANY_ARRAY}), 1, 0)")
    # ... and what it is: which reason the value is bad for (`_REASONS`), or 0...
    reason = (
        f"multiIf(p = 0, 0, {is_null}, {_NULL}, "
        f"k = {_INTEGER}, multiIf({is_bool}, 0, {is_int}, if({in_range_of('t')}, 0, "
        f"{_OUT_OF_RANGE}), "
        # Python takes a whole number written with a fraction or an exponent as that
        # integer: the engine writes it in digits, or with an exponent from 1e21 on.
        # (A fraction without an exponent is never whole: the engine writes 2.0 as 2.)
        f"{is_double} AND position(v, '.') > 0 AND position(v, 'e') = 0, "
        f"{_reason('is not an integer')}, "
        # Past 2^53 the engine writes a float's shortest digits, not its value: of the
        # floats at the ends of the integer types, only -2^63 (Int64's least) is then
        # out of range where its value is not.
        f"{is_double} AND match(v, '^-?[0-9]+$'), if(length(v) - startsWith(v, '-') <= 38 AND "
        f"{in_range_of(double_value)}, 0, {_OUT_OF_RANGE}), "
        f"{is_double} AND match(v, 'e[0-9]'), {_OUT_OF_RANGE}, "
        f"NOT {is_text}, {_reason('is not an integer')}, "
        f"NOT match({digits}, '^[+-]?[0-9]+$'), {_reason('is not an integer')}, "
        # Over 38 digits, past its leading zeros, a number is out of every range (and
        # toInt128 would wrap).
        f"length({significant}) > 38, {_OUT_OF_RANGE}, "
        f"{in_range_of(signed_significant)}, 0, {_OUT_OF_RANGE}), "
        f"k = {_TIME}, multiIf({is_bool} OR {is_nested}, "
        f"{_reason('is not a date and time')}, "
        f"NOT {is_text}, 0, NOT match(t, '[0-9]') OR {no_year} OR d = '' OR NOT {good_time}, "
        f"{_reason('is not an ISO 8601 date and time')}, "
        f"startsWith(d, '{_UNSTORED_DAY}'), {_reason('is out of the supported date range')}, 0), "
        f"k = {_FLOAT}, if({not_number}, {_reason('is not a number')}, 0), "
        f"k = {_BOOL}, if({boolean}, 0, {_reason('is not a boolean')}), "
        f"k = {_DATE}, multiIf(NOT {is_text}, {_reason('is not a date')}, "
        f"{good_day}, 0, {_reason('is not a date (YYYY-MM-DD)')}), "
        f"k = {_UUID}, if({is_text} AND {is_uuid}, 0, {_reason('is not a UUID')}), "
        f"k IN ({_ARRAY}, {_TEXT_ARRAY}, {_ANY_ARRAY}), multiIf(y != 'Array', "
        f"{_reason('is not an array')}, k = {_TEXT_ARRAY} AND "
        f"has(JSONExtractArrayRaw(t), 'null'), {_reason('has a null item')}, 0), 0)")
    # ... in words (one message made for each bad value, not one for each way to be bad).
    reasons = _array([quote_string(r) for r in _REASONS])
    error = (f"multiIf(r = 0, '', r = {_NULL}, {null_error}, "
             f"{message('t', f'if(r = {_OUT_OF_RANGE}, {out_of_range}, {reasons}[r + 1])')})")
    names = _array([quote_string(c.name) for c in ds.columns])
    kind = _array([str(k) for k, _, _ in kinds])
    # Values every JSON parser reads alike; in other keys than the columns', any value
    # of a short line (a long one might nest deeper than orjson reads).
    short = f"length(line) < {_NESTED_LINE_BYTES}"
    plain = (f"arrayAll((p, y) -> y IN ('String', 'Int64', 'Double', 'Bool', 'Null', "
             "'NonFinite') OR "
             f"p = 0 AND {short} OR p > 0 AND y IN ('Array', 'Object'), positions, types)")
    # A column's array or object is the engine's only in a short line (a long one might
    # nest deeper than orjson reads); its numbers are written as orjson writes them
    # (`_nested_as_orjson_writes`).
    nested_alike = (f"NOT arrayExists((p, y) -> p > 0 AND y IN ('Array', 'Object'), "
                    f"positions, types) OR {short}")
    checked = ("0" if not required else
               # A JSON line that starts with { (`kind` 4) is an object.
               f"{plain} AND ({nested_alike}) AND "
               f"arrayAll({_EACH_VALUE} -> {decided}, {_VALUE_ARRAYS}) AND "
               f"length({MISSING_AT}) > 0")
    lines = f"SELECT line, raw, {REPEAT} FROM {table} WHERE {where}"
    # Each value once: its type, and as text (strings unescaped, the rest as the engine
    # writes them). A key given twice counts once, for its last value, as in Python.
    pairs = (f"SELECT line, raw, {REPEAT}, "
             f"JSONExtractKeysAndValues(line, 'Nullable(String)') AS pairs FROM ({lines})")
    # In a line with arrays or objects and a number with a fraction or an exponent: its
    # numbers as sent, and how many come before each value (`_nested_as_orjson_writes`).
    numbers_in_values = ("arrayMap((y, v) -> multiIf(y IN ('Int64', 'UInt64', 'Double'), 1, "
                         f"y IN ('Array', 'Object'), length({_numbers_in('v')}), 0), "
                         "json_types, values)")
    typed = (f"SELECT line, raw, {REPEAT}, pairs,"
             " arrayMap(j -> JSONType(line, j), arrayEnumerate(pairs)) AS json_types,"
             f" arrayMap(p -> ifNull(p.2, ''), pairs) AS values,"
             " if(arrayExists(y -> y IN ('Array', 'Object'), json_types) AND "
             f"match(line, '[0-9][.eE]'), {_numbers_in('line')}, []) AS sent_numbers,"
             " if(empty(sent_numbers), arrayWithConstant(length(values), 0), "
             f"{numbers_in_values}) AS value_numbers,"
             # Each array or object written with its numbers as orjson writes them.
             " if(empty(sent_numbers), values, arrayMap((y, t, b) -> if(y IN ('Array', "
             f"'Object'), {_nested_as_orjson_writes('t', 'sent_numbers', 'b')}, t), "
             "json_types, values, arrayMap((n, c) -> c - n, value_numbers, "
             f"arrayCumSum(value_numbers)))) AS sent_values FROM ({pairs})")
    keyed = (f"SELECT line, raw, {REPEAT}, arrayMap(p -> indexOf({names}, p.1), pairs) AS given,"
             # NaN, Infinity and -Infinity, as the engine read them (`_NON_FINITE_AS_TEXT`;
             # a line with such a text of its own is not checked here).
             f" arrayMap((y, t) -> multiIf(y = 'String' AND t IN ({_NON_FINITE_TEXTS}), "
             # A whole number past Int64 that fits 64 bits is an integer to Python too
             # (`_as_floats_past_64_bits`).
             "'NonFinite', y = 'UInt64', 'Int64', y), json_types, values) AS types,"
             # Numbers as orjson writes them, from how the engine writes them.
             f" arrayMap((y, t) -> multiIf(y = 'Double', {_as_orjson_writes('t')}, "
             "y = 'NonFinite', substring(t, 2), t), types, sent_values) AS texts, values"
             f" FROM ({typed})")
    found = ("SELECT *, arrayMap((p, j) -> if(p > 0 AND arrayLastIndex(q -> q = p, given) != j, "
             "0, p), given, arrayEnumerate(given)) AS positions,"
             f" arrayMap(p -> {kind}[p], positions) AS kinds,"
             f" arrayMap((y, t) -> if({is_null}, NULL, t), types, texts) AS shown"
             f" FROM ({keyed})")
    # What several checks read of a value, worked out once (an expression written twice in
    # a lambda is worked out twice): whether an array or object is written as orjson
    # writes it, the text stripped, its digits in ASCII, and a time's parts.
    prepared = (
        f"SELECT *, arrayMap((y, t) -> y IN ('Array', 'Object') AND {nested_alike_text}, "
        "types, texts) AS nested,"
        f" arrayMap((k, y, t) -> multiIf(y != 'String', '', k IN ({_INTEGER}, {_TIME}), "
        f"replaceRegexpAll(t, {_STRIPPED_AT_ENDS}, ''), k = {_DATE}, "
        f"substringUTF8(replaceRegexpAll(t, {_STRIPPED_AT_ENDS}, ''), 1, 10), k = {_FLOAT}, "
        f"replaceRegexpAll(t, {_FLOAT_STRIPPED_AT_ENDS}, ''), ''), kinds, types, texts)"
        f" AS stripped FROM ({found})")
    # A time's or a date's text from its day on (`_read_day`).
    dated = (
        f"SELECT *, if(hasAny(kinds, [{_TIME}, {_DATE}]), arrayMap((k, s) -> if(k IN ({_TIME}, "
        f"{_DATE}) AND match(s, '^[0-9]{{4}}') AND {no_nul}, {_read_day('k', 's')}, ''), "
        "kinds, stripped), arrayWithConstant(length(kinds), '')) AS days"
        f" FROM ({prepared})")
    moments = (
        f"SELECT *, arrayMap((k, s) -> if(k IN ({_INTEGER}, {_FLOAT}), translateUTF8(s, "
        f"{digits_from}, {digits_to}), ''), kinds, stripped) AS numbers,"
        f" arrayMap((k, d) -> if(k = {_TIME} AND length(d) > 10, extractGroups(d, "
        f"'{_MOMENT}'), []), kinds, days) AS moments FROM ({dated})")
    read = (
        "SELECT *, arrayMap(m -> multiIf(empty(m), [], m[3] = '', "
        f"extractGroups(m[2], '{_CLOCK}'), extractGroups(m[2], '{_CLOCK_BEFORE_ZONE}')), "
        "moments) AS clocks,"
        " arrayMap(m -> if(substring(m[3], 1, 1) IN ('+', '-'), "
        f"extractGroups(substring(m[3], 2), '{_CLOCK}'), []), moments) AS offsets"
        f" FROM ({moments})")
    values = (f"SELECT *, arrayFilter(i -> NOT has(positions, i), [{', '.join(required)}])"
              f" AS {MISSING_AT},"
              f" arrayMap((p, t, r) -> {error}, positions, texts,"
              f" arrayMap({_EACH_VALUE} -> {reason}, {_VALUE_ARRAYS})) AS errors"
              f" FROM ({read})")
    return (
        f"SELECT line, raw, {REPEAT}, {checked} AS checked,\n"
        f"  arrayMap(i -> shown[indexOf(positions, i)], range(1, arrayMax(positions) + 1))"
        f" AS {ORIGINAL},\n"
        "  arrayFilter(e -> e != '', errors) AS c__error, "
        f"{MISSING_AT},\n"
        f"  arrayFilter((p, e) -> e != '', positions, errors) AS {ERROR_AT}\n"
        f"FROM ({values})")


# What becomes of a sifted line (the `outcome` column of the sifted lines).
KEPT, CHECKED, REJECTED = 0, 1, 2


# What a sifted line is (the `kind` of the sifted lines): 0, blank; 1, not an event; 2, an
# object line that is not JSON; 3, one the engine cannot read as Python does; 4, a JSON
# object; `_TO_READ`, one `read_sql` reads (it adds the line as read, and the line yet
# to be read stays, unused).
_TO_READ = 5


# Whether Python may read a line with json, not orjson (`RowChecker._loads_leniently`):
# it may hold NaN or an infinity, or a \\u escape (of half a UTF-16 pair).
_JSON_READ = "(marked OR position(sent, '\\\\u') > 0)"
# A whole number of 19 digits or more, in a line with its strings taken out.
_LONG_WHOLE = "'(^|[^0-9.eE+-])-?[0-9]{19,}($|[^0-9.eE])'"


def _may_be_non_finite(text: str) -> str:
    """Whether a text may hold NaN or an infinity (`_NON_FINITE_AS_TEXT`)."""
    return f"multiSearchAny({text}, ['NaN', 'Infinity'])"


def _may_be_long(text: str) -> str:
    """Whether a text has a run of digits as long as the whole numbers orjson reads past
    64 bits."""
    return f"match({text}, '[0-9]{{19}}')"


def _digits_outside_strings(whole: str) -> str:
    """A line with its strings emptied where it has a run of 19 digits (else ''): whether
    it holds a whole number of 19 digits or more is `match(..., _LONG_WHOLE)` (digits in
    texts, and in a number with a fraction or an exponent, do not matter)."""
    return f"if({_may_be_long(whole)}, {_without_strings(whole)}, '')"


def _reads_long_numbers(sent: str, plain: str) -> str:
    """Whether the engine reads a line's long whole numbers as orjson does once
    `_as_floats_past_64_bits` has written them: in a flat object (one brace, no bracket
    outside strings), without \\u escapes, in valid UTF-8 (each of whose characters
    the rewrite keeps), and under 309 digits (orjson refuses a number past the largest
    float). Other lines that hold one are left to Python. `plain`: the line with its
    strings emptied."""
    return (f"position({sent}, '\\\\u') = 0 AND isValidUTF8({sent}) AND "
            f"countSubstrings({plain}, '{{') = 1 AND "
            f"position({plain}, '[') = 0 AND NOT match({plain}, '[0-9]{{309}}')")


def _as_floats_past_64_bits(whole: str) -> str:
    """A line with each whole number of 19 digits or more that does not fit 64 bits
    written with .0: orjson reads such a number as a float (those that fit are integers,
    which the engine reads as Int64 or UInt64), and the engine then reads the same float.
    Every byte is a token (strings, numbers, the rest, or any one byte)."""
    past_64_bits = ("if(startsWith(n, '-'), length(n) > 20 OR length(n) = 20 AND "
                    "substring(n, 2) > '9223372036854775808', length(n) > 20 OR "
                    "length(n) = 20 AND n > '18446744073709551615')")
    return (f"arrayStringConcat(arrayMap(n -> if(match(n, '^-?[0-9]{{19,}}$') AND "
            f"{past_64_bits}, concat(n, '.0'), n), extractAll({whole}, '{_JSON_TOKEN}|.')))")


def _line_kind(sent: str, fixed: str, marked: str | None = None, python_long: str = "0",
               json_read: str = "0") -> str:
    """The kind of a line as sent, `fixed` as Python reads it (`_WHOLE_CHARACTERS`,
    `_NON_FINITE_AS_TEXT`), `marked` if it may hold NaN or an infinity; None for a plain
    line (no \\u escape, NaN, infinity, or run of 19 digits), which needs none of the
    tests for them. `python_long`: whether it holds long whole numbers the engine does
    not read as Python does; `json_read`: whether Python may read it with json, which
    takes a number past the largest float as infinity where orjson and the engine refuse
    it (such a line that the engine finds is not JSON, with a number that may be past
    the largest float, is Python's, as is the other)."""
    text = f"trim(BOTH ' \\t\\r' FROM {fixed})"
    is_object = f"startsWith({text}, '{{') AND endsWith({text}, '}}')"
    non_finite = "" if marked is None else (
        f"{marked} AND positionCaseInsensitive({sent}, '\\\\u0003') > 0, 3, "
        f"{marked} AND {_NON_FINITE_KEY.replace('fixed', fixed)}, 2, ")
    json_object = "4" if marked is None else f"if({python_long}, 3, 4)"
    # (Any exponent: 250 digits and e60 are past it too.)
    past_floats = f"match({_without_strings(fixed)}, '[0-9]{{300}}|[0-9][eE]')"
    by_json = "" if marked is None else (
        f"{json_read} AND NOT isValidJSON({fixed}) AND {past_floats}, 3, ")
    return (f"multiIf({text} = '', 0, NOT ({is_object}), 1, {non_finite}{by_json}"
            f"isValidJSON({fixed}), {json_object}, 2)")


def sift_sql(ds: Datasource) -> list[str]:
    """The tables and views that sift lines (see the module's docstring). Made again at
    every start.

    Lines go into a Null table. A view groups alike lines (one row each, with how many
    came) and tells what each is, into a Memory table; `read_sql` then reads the few that
    need regexes, and writes the rejected rows (not events, or not JSON). `check_sql`
    checks its JSON objects into a Null table whose views write the compact rows of
    those found bad, through a Buffer that `flush_sql` empties. What `Engine.sift_lines`
    reads back is in a third table: the lines left for Python, and how many lines were
    quarantined.
    """
    sift, sifted = (quote_identifier(n) for n in sift_names(ds))
    lines, checked = (quote_identifier(n) for n in _stage_names(ds))
    compact = f"{ORIGINAL}, c__error, {MISSING_AT}, {ERROR_AT}, {REPEAT}"
    filled = "getSetting('log_comment') AS c__import_id, now() AS insertion_date"
    view = {name: quote_identifier(f"_tb_local_{ds.name}_sift_{name}__mv")
            for name in _VIEWS}
    compact_rows = quote_identifier(compact_rows_name(ds))
    buffer = quote_identifier(_buffer_name(ds))

    def count(outcome: int, table: str, where: str) -> str:
        return (f"SELECT toUInt32(sum({REPEAT})) AS {REPEAT}, {outcome} AS outcome "
                f"FROM {table} WHERE {where}")

    return [f"DROP VIEW IF EXISTS {name}" for name in view.values()] + [
        f"DROP TABLE IF EXISTS {table}" for table in (sift, lines, checked, sifted, buffer)] + [
        f"CREATE TABLE {sift} (line String) ENGINE = Null",
        # `raw`: the line as sent where it differs from `line` (`_WHOLE_CHARACTERS`), else ''.
        f"CREATE TABLE {lines} (line String, raw String, {REPEAT} UInt32, kind UInt8) "
        "ENGINE = Memory",
        f"CREATE TABLE {checked} (line String, raw String, {REPEAT} UInt32, checked UInt8, "
        f"{ORIGINAL} Array(Nullable(String)), c__error Array(String), "
        f"{MISSING_AT} Array(UInt16), {ERROR_AT} Array(UInt16)) ENGINE = Null",
        f"CREATE TABLE {sifted} (line String, {REPEAT} UInt32, outcome UInt8) ENGINE = Memory",
        # The check writes compact rows a few thousand at a time, and a part of the
        # MergeTree for each cost about 0.5 s of 2.6 for 10 MB of tiny lines: they
        # gather here, and go on in a few large parts (`flush_sql` writes the rest).
        f"CREATE TABLE {buffer} AS {compact_rows} ENGINE = Buffer(currentDatabase(), "
        f"{compact_rows}, 1, 0, 3600, 1000000000, 1000000000, 1000000000, "
        f"{BUFFER_BYTES})",
        # Each insert's lines, grouped, and what each is where that is plain (no \\u
        # escape, no NaN or Infinity, no run of 19 digits); the others are `_TO_READ`,
        # and `read_sql` reads them. (A view is planned anew for each insert: their
        # regexes in it cost about 15 ms an insert, 0.3 s of a 10 MB body.)
        f"CREATE MATERIALIZED VIEW {view['lines']} TO {lines} AS\n"
        f"SELECT line, '' AS raw, {REPEAT}, "
        f"if(position(line, '\\\\u') > 0 OR {_may_be_non_finite('line')} OR "
        f"{_may_be_long('line')}, "
        f"{_TO_READ}, {_line_kind('line', 'line')}) AS kind FROM "
        f"(SELECT line, toUInt32(count()) AS {REPEAT} FROM {sift} GROUP BY line)",
        f"CREATE MATERIALIZED VIEW {view['compact']} TO {buffer} AS\n"
        f"SELECT {compact}, {filled} FROM {checked} WHERE checked",
        f"CREATE MATERIALIZED VIEW {view['compact_count']} TO {sifted} AS\n"
        + count(CHECKED, checked, "checked"),
        f"CREATE MATERIALIZED VIEW {view['kept']} TO {sifted} AS\n"
        # As sent: Python must read what it would have read (json reads integers of any
        # size where orjson does not).
        f"SELECT if(raw = '', checked_line, raw) AS line, {REPEAT}, {KEPT} AS outcome "
        f"FROM (SELECT line AS checked_line, raw, {REPEAT}, checked FROM {checked}) "
        "WHERE NOT checked",
    ]


def read_sql(ds: Datasource, import_id: str) -> list[str]:
    """After the inserts (`sift_sql`): read the lines yet to be read, and quarantine
    those that cannot be events or are not JSON, and count them. A JSON object is
    checked, and kept, as Python stores it (`_WHOLE_CHARACTERS`, `_NON_FINITE_AS_TEXT`);
    every other line as sent."""
    sifted = quote_identifier(sift_names(ds)[1])
    lines = quote_identifier(_stage_names(ds)[0])
    whole = f"if(position(sent, '\\\\u') = 0, sent, {_WHOLE_CHARACTERS})"
    kind = _line_kind("sent", "fixed", "marked", "long AND (marked OR NOT reads_long)",
                      _JSON_READ)
    return [
        f"INSERT INTO {lines} SELECT if(kind = 4, fixed, sent), "
        f"if(kind = 4 AND fixed != sent, sent, ''), {REPEAT}, kind FROM "
        f"(SELECT sent, {REPEAT}, fixed, {kind} AS kind FROM "
        f"(SELECT sent, {REPEAT}, marked, long, reads_long, multiIf(marked, "
        f"{_NON_FINITE_AS_TEXT}, long AND reads_long, {_as_floats_past_64_bits('whole')}, "
        "whole) AS fixed FROM "
        f"(SELECT sent, {REPEAT}, whole, marked, long, long AND NOT marked AND "
        f"{_reads_long_numbers('sent', 'plain')} AS reads_long FROM "
        f"(SELECT sent, {REPEAT}, whole, marked, plain, match(plain, {_LONG_WHOLE}) AS long FROM "
        f"(SELECT sent, {REPEAT}, whole, {_may_be_non_finite('whole')} AS marked, "
        f"{_digits_outside_strings('whole')} AS plain FROM "
        f"(SELECT sent, {REPEAT}, {whole} AS whole FROM "
        f"(SELECT line AS sent, {REPEAT} FROM {lines} WHERE kind = {_TO_READ})))))))\n"
        # On two threads (10 MB of NaN lines: 0.7 s of CPU, in 0.4 s), in blocks as the
        # view wrote them (without these settings, blocks of three times as many lines,
        # which cost the check half as much memory again), and each stage on its own:
        # merged, the stages worked out the line as read again for each branch of the
        # kind that reads it (10 MB of long numbers: 1.35 s, 0.68 s on its own).
        f"SETTINGS max_threads = 2, max_block_size = {CHECK_ROWS}, "
        f"min_insert_block_size_rows = {CHECK_ROWS}, min_insert_block_size_bytes = 0, "
        "query_plan_merge_expressions = 0",
        f"INSERT INTO {quote_identifier(rejected_rows_name(ds))} (line, {REPEAT}) "
        f"SELECT line, {REPEAT} FROM {lines} WHERE kind IN (1, 2) "
        f"SETTINGS log_comment = {quote_string(import_id)}",
        f"INSERT INTO {sifted} SELECT line, {REPEAT}, {KEPT} FROM {lines} WHERE kind = 3 "
        f"UNION ALL SELECT '', toUInt32(sum({REPEAT})), {REJECTED} FROM {lines} "
        "WHERE kind IN (1, 2)",
    ]


def objects_sql(ds: Datasource) -> str:
    """How many sifted lines are JSON objects (`check_sql` has nothing to do without)."""
    return f"SELECT count() FROM {quote_identifier(_stage_names(ds)[0])} WHERE kind = 4"


def check_sql(ds: Datasource, import_id: str) -> str:
    """Check the sifted JSON objects (`checked_rows_sql`) into the Null table whose views
    write the compact rows and the lines kept, a few thousand rows at a time."""
    lines, checked = (quote_identifier(n) for n in _stage_names(ds))
    select = checked_rows_sql(ds, lines, "kind = 4") if engine_checks(ds) else (
        f"SELECT line, raw, {REPEAT}, 0 AS checked FROM {lines} WHERE kind = 4")
    return (f"INSERT INTO {checked} {select}\n"
            f"SETTINGS log_comment = {quote_string(import_id)}, "
            f"min_insert_block_size_rows = {CHECK_ROWS}, min_insert_block_size_bytes = 0, "
            # Two threads check while the views write (without parallel views, the
            # check runs on one thread whatever max_threads says): a 10 MB flood of
            # tiny lines takes 30% less time for the same CPU, and its peak memory
            # grows by about 35 MB, to 150 MB.
            "max_threads = 2, parallel_view_processing = 1, "
            # Branches of if and multiIf, and arrays of values, are worked out only for
            # the rows that take them: most checks are for a few kinds of value.
            "short_circuit_function_evaluation = 'force_enable'")


def flush_sql(ds: Datasource) -> str:
    """Write the compact rows the Buffer still holds (`sift_sql`)."""
    return f"OPTIMIZE TABLE {quote_identifier(_buffer_name(ds))}"


def sift_tables(ds: Datasource) -> list[str]:
    """The Memory tables a sift fills, to be emptied after it."""
    return [sift_names(ds)[1], _stage_names(ds)[0]]
