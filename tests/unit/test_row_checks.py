"""The Events API's row checks, called directly: every column type, nulls and defaults,
the quarantine reasons, and the clean-rows reader.

The clean-rows reader (`CleanRows`) reads the common, clean event without the full
check. It is tested here on its own, and against its one promise: a line it takes is
one the full check would have accepted, with the same values.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from lib.tinybird_local.batches import CheckedBatch, as_ndjson, checked_batches
from lib.tinybird_local.datafiles import Datasource, parse_datasource
from lib.tinybird_local.quarantine import missing_reason
from lib.tinybird_local.row_checks import CleanRows, QuarantinedRow, RowChecker, encode


def datasource(schema: str, name: str = "checks") -> Datasource:
    return parse_datasource(Path(f"{name}.datasource"), f"SCHEMA >\n    {schema}\n")


# --- the clean-rows reader ---------------------------------------------------------------

QUICK_SCHEMA = """`i8` Int8, `u8` UInt8, `i16` Int16, `u16` UInt16, `i32` Int32, `u32` UInt32,
    `i64` Int64, `u64` UInt64 `json:$.u64`, `s` String, `lc` LowCardinality(String),
    `ns` Nullable(String), `t` DateTime, `t64` DateTime64(3, 'UTC')"""
INT_BOUNDS = {
    "i8": (-128, 127), "u8": (0, 255), "i16": (-32768, 32767), "u16": (0, 65535),
    "i32": (-(2**31), 2**31 - 1), "u32": (0, 2**32 - 1),
    "i64": (-(2**63), 2**63 - 1), "u64": (0, 2**64 - 1),
}
CLEAN: dict[str, Any] = {
    "i8": -5, "u8": 1, "i16": 300, "u16": 60000, "i32": -70000, "u32": 4_000_000_000,
    "i64": -(2**40), "u64": 2**63, "s": "text", "lc": "", "ns": "maybe",
    "t": "2024-06-01 12:00:00", "t64": "2024-06-01T12:00:00.000Z",
}
# Values the reader must refuse (the full check decides what they become).
NOT_QUICK_INT = [1.0, "1", None, [], {}, "x"]
NOT_QUICK_STR = [1, 1.5, True, None, [], {"a": 1}]
NOT_QUICK_TIME = [
    1_700_000_000, None, "",
    "2024-06-01T12:00:00+02:00",  # an offset: the full check rewrites it to UTC
    "2024-W22-6T12:00:00.000Z",  # a week date of Mockingbird's length: rewritten too
    "2024-06-01T12:00:00.000+0",
    "1899-12-31 23:59:59", "2300-01-01T00:00:00.000Z",  # outside the engine's range
    "2024-02-30 00:00:00", "2024-06-01T25:00:00.000Z", " 2024-06-01 12:00:00",
    "2024-06-01 12:00:00\n", "2024-06-01 12:00:00\n2024-06-01 12:00:00", "yesterday",
    "2024-00-01 12:00:00", "2024-06-01 12:60:00", "\u0662\u0660\u0662\u0664-06-01 12:00:00",
]


@pytest.fixture(scope="module")
def clean() -> CleanRows:
    reader = CleanRows.for_datasource(datasource(QUICK_SCHEMA))
    assert reader is not None
    return reader


@pytest.fixture(scope="module")
def quick(clean):
    """Whether the reader takes an event, sent as one JSON line."""
    def takes(event: dict[str, Any]) -> bool:
        return clean.read(json.dumps(event).encode()) is not None
    return takes


def test_clean_rows_exist_only_for_their_types():
    for column in ["`f` Float64", "`b` Bool", "`d` Date", "`id` UUID", "`a` Array(Int8)",
                   "`big` Int128", "`e` Enum8('a' = 1)", "`fs` FixedString(2)"]:
        assert CleanRows.for_datasource(datasource(f"`s` String, {column}")) is None, column
    assert CleanRows.for_datasource(datasource("`s` String `json:$.a.b`")) is None
    # A nested JSONPath reads the event differently: the RowChecker has no clean rows.
    nested = RowChecker(datasource("`s` String `json:$.a.b`"))
    batch = CheckedBatch()
    nested.check_line(b'{"a": {"b": "x"}, "s": 1}', batch)
    assert batch.rows == [b'{"s":"x"}']


def test_clean_rows_take_a_clean_event(quick, clean):
    assert quick(CLEAN) is True
    assert quick({**CLEAN, "extra": {"deep": [1.5, None]}}) is True  # other keys are not read
    # A column given twice counts for its last value, as in the full check.
    twice = json.dumps(CLEAN)[:-1] + ', "i8": 1000}'
    assert clean.read(twice.encode()) is None
    for first in (1000, 3):  # out of range (the full check decides), in range
        given_first = f'{{"i8": {first}, ' + json.dumps(CLEAN)[1:]
        row = clean.read(given_first.encode())
        assert row is None or json.loads(row)["i8"] == -5, row
    assert clean.read(('{"i8": 3, ' + json.dumps(CLEAN)[1:]).encode()) is not None
    for line in (b"", b" ", json.dumps(CLEAN).encode() + b" {}", b"[]", b"1",
                 json.dumps(CLEAN).encode()[:-1], json.dumps({**CLEAN, "s": "\ud800"}).encode()):
        assert clean.read(line) is None, line


@pytest.mark.parametrize("column", sorted(INT_BOUNDS))
def test_clean_rows_integer_bounds_and_types(quick, column):
    low, high = INT_BOUNDS[column]
    for ok in (low, high, True, False):
        assert quick({**CLEAN, column: ok}) is True, ok
    for bad in (low - 1, high + 1, *NOT_QUICK_INT):
        assert quick({**CLEAN, column: bad}) is False, bad
    assert quick({k: v for k, v in CLEAN.items() if k != column}) is False


@pytest.mark.parametrize("column", ["s", "lc", "ns"])
def test_clean_rows_strings(quick, column):
    for bad in NOT_QUICK_STR:
        assert quick({**CLEAN, column: bad}) is False, bad
    assert quick({k: v for k, v in CLEAN.items() if k != column}) is False


@pytest.mark.parametrize("column", ["t", "t64"])
def test_clean_rows_times(quick, column):
    for ok in ("2024-06-01 12:00:00", "2024-06-01T12:00:00", "2024-06-01T12:00:00Z",
               "2024-06-01T12:00:00.123456789Z", "1900-01-01 00:00:00",
               "2299-12-31T23:59:59.999Z"):
        assert quick({**CLEAN, column: ok}) is True, ok
    for bad in NOT_QUICK_TIME:
        assert quick({**CLEAN, column: bad}) is False, bad


def test_an_event_the_clean_rows_take_is_one_the_full_check_keeps(clean):
    """The reader's promise, over every combination of tricky values: taking a line
    means the full check accepts the event and writes the same values."""
    checker = RowChecker(datasource(QUICK_SCHEMA))
    pools: dict[str, list[Any]] = {
        "u8": [0, 255, 256, True, 1.0, "1"],
        "i64": [-(2**63), 2**63, False, None],
        "ns": ["", None, 5],
        "t": ["2024-06-01 12:00:00", *NOT_QUICK_TIME],
        "t64": ["2024-06-01T12:00:00.000Z", "2024-06-01T12:00:00Z",
                "2024-06-01T12:00:00+00:00", "2024-W22-6T12:00:00.000Z"],
    }
    passed = 0
    for values in itertools.product(*pools.values()):
        event = {**CLEAN, **dict(zip(pools, values, strict=True))}
        row = clean.read(json.dumps(event).encode())
        if row is None:
            continue
        passed += 1
        batch = CheckedBatch()
        checker.check_event(event, batch)
        assert batch.quarantined_count == 0, event
        assert [json.loads(r) for r in batch.rows] == [json.loads(row)], event
    assert passed > 10


def test_a_window_is_read_whole_only_when_every_line_is_clean(clean):
    """Read whole, a window gives the rows that reading it line by line gives; a window
    with any line that is not clean (blank, two objects, bad) goes line by line."""
    checker = RowChecker(datasource(QUICK_SCHEMA))
    assert checker.clean is not None
    line = json.dumps(CLEAN).encode()
    other = json.dumps({**CLEAN, "s": "other", "t": "2024-06-01T12:00:00"}).encode()
    whole = clean.read_all([line, other, line])
    assert whole is not None and whole.splitlines() == [clean.read(x) for x in (line, other, line)]
    for window in ([line, b"", line], [line + b" " + line], [line, b'{"i8": "x"}']):
        assert clean.read_all(window) is None, window
    # Through checked_batches: the same rows both ways, and the odd lines quarantined.
    mixed = b"\n".join([line, b"", line + b" " + line, other, b'{"i8": "x"}', b"1"])
    batches = list(checked_batches(checker, mixed))
    assert [json.loads(r) for b in batches for r in b.rows] == [
        json.loads(r) for r in (clean.read(line), clean.read(other))]
    assert sum(b.quarantined_count for b in batches) + sum(
        b.rejected.count(b"\n") + 1 for b in batches if b.rejected) >= 3



# --- the full check, column type by column type ----------------------------------------

FULL_SCHEMA = """`i` Int32, `u` UInt8, `big` Int128, `f` Float64, `s` String,
    `fs` FixedString(4), `e` Enum8('a' = 1, 'b' = 2), `t` DateTime64(3), `d` Date,
    `b` Bool, `id` UUID, `arr` Array(Int16), `narr` Array(Nullable(String)),
    `n` Nullable(Int32), `lc` LowCardinality(Nullable(String)), `dflt` Int32 DEFAULT 7,
    `nested` String `json:$.a.b`, `m` Map(String, String)"""
FULL_CLEAN: dict[str, Any] = {
    "i": 1, "u": 2, "big": 3, "f": 1.5, "s": "s", "fs": "abcd", "e": "a",
    "t": "2024-06-01T12:00:00.000Z", "d": "2024-06-01", "b": True,
    "id": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "arr": [1], "narr": ["x"], "n": 4,
    "lc": "l", "dflt": 8, "a": {"b": "deep"}, "m": {"k": "v"},
}


@pytest.fixture(scope="module")
def full() -> RowChecker:
    return RowChecker(datasource(FULL_SCHEMA))


def full_row(**changes: Any) -> bytes:
    """FULL_CLEAN as the checker writes it: schema columns in schema order."""
    values = {**FULL_CLEAN, "nested": "deep", **changes}
    return encode({c.name: values[c.name] for c in datasource(FULL_SCHEMA).columns})


def check(checker: RowChecker, event: Any) -> CheckedBatch:
    batch = CheckedBatch()
    checker.check_event(event, batch)
    return batch


def quarantined(checker: RowChecker, batch: CheckedBatch) -> list[QuarantinedRow]:
    """The batch's quarantined rows in Tinybird's form, compact ones read back as the
    quarantine view reads them: values by position, reasons merged in column order."""
    names = [c.name for c in checker.datasource.columns]
    rows = list(batch.quarantined)
    for line in bytes(batch.compact).splitlines():
        compact = json.loads(line)
        original = compact.get("original", [])
        reasons = {at: missing_reason(checker.datasource.columns[at - 1])
                   for at in compact["missing_at"]}
        reasons.update(zip(compact.get("error_at", []), compact.get("c__error", []),
                           strict=True))
        values = {name: original[i] if i < len(original) else None
                  for i, name in enumerate(names)}
        rows.append(QuarantinedRow(values, [names[at - 1] for at in sorted(reasons)],
                                   [reasons[at] for at in sorted(reasons)]))
    return rows


def test_the_full_check_has_no_clean_rows_for_this_schema(full):
    assert full.clean is None


def test_a_clean_event_becomes_one_row_of_the_schema_columns(full):
    batch = check(full, FULL_CLEAN)
    assert batch.quarantined_count == 0
    assert batch.rows == [full_row()]


@pytest.mark.parametrize("column, given, written", [
    ("i", 5.0, 5), ("i", " -12 ", -12), ("i", True, True), ("i", "+7", 7),
    # int() refuses texts of over 4300 digits; leading zeros of any script are read past.
    ("i", "0" * 5000 + "12", 12), ("i", "-" + "\u0660" * 5000 + "7", -7), ("i", "-" + "0" * 90, 0),
    ("u", 255, 255),
    ("big", 2**100, 2**100), ("big", str(-(2**120)), -(2**120)),
    ("f", "1.25", 1.25), ("f", 2, 2.0), ("f", "-1e3", -1000.0),
    ("s", 1, "1"), ("s", 1.5, "1.5"), ("s", False, "false"), ("s", {"x": [1]}, '{"x":[1]}'),
    ("fs", "ab", "ab"), ("e", "b", "b"),
    ("t", "2024-06-01 12:00:00", "2024-06-01 12:00:00"),
    ("t", "2024-06-01T12:00:00+02:00", "2024-06-01 10:00:00.000000"),
    ("t", "2024-W22-6T12:00:00.000Z", "2024-06-01 12:00:00.000000"),
    ("t", 1_700_000_000, 1_700_000_000), ("t", 1.7e9, 1.7e9),
    ("d", "2024-06-01T23:00:00", "2024-06-01"), ("d", " 2024-06-01", "2024-06-01"),
    ("b", "TRUE", True), ("b", 0, False), ("b", "1", True), ("b", False, False),
    ("id", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    ("arr", [1, "2", 3.0], [1, 2, 3]), ("arr", [], []),
    ("narr", ["a", None, 3], ["a", None, "3"]),
    ("n", None, None), ("lc", None, None),
    ("m", {"k": "v"}, {"k": "v"}),  # no check for this type: passed on as it is
])
def test_each_type_converts_what_the_engine_would_read(full, column, given, written):
    batch = check(full, {**FULL_CLEAN, column: given})
    assert batch.quarantined_count == 0
    assert batch.rows == [full_row(**{column: written})]


@pytest.mark.parametrize("column, given, reason", [
    ("i", "abc", "value 'abc' on column 'i' is not an integer (Int32)"),
    ("i", 1.5, "value '1.5' on column 'i' is not an integer (Int32)"),
    ("i", 2**31, f"value '{2**31}' on column 'i' is out of range "
                 "[-2147483648, 2147483647] (Int32)"),
    ("u", -1, "value '-1' on column 'u' is out of range [0, 255] (UInt8)"),
    ("u", "9" * 5000, f"value '{'9' * 200}' on column 'u' is out of range [0, 255] (UInt8)"),
    ("big", "-1" + "0" * 80, f"value '-1{'0' * 80}' on column 'big' is out of range "
                             f"[{-(2**127)}, {2**127 - 1}] (Int128)"),
    ("big", 2**127, f"value '{2**127}' on column 'big' is out of range "
                    f"[{-(2**127)}, {2**127 - 1}] (Int128)"),
    ("f", "x", "value 'x' on column 'f' is not a number (Float64)"),
    ("f", True, "value 'true' on column 'f' is not a number (Float64)"),
    ("f", "NaN?", "value 'NaN?' on column 'f' is not a number (Float64)"),
    # float() refuses it with OverflowError (a 500 before).
    pytest.param("f", 10**400, f"value '1{'0' * 199}' on column 'f' is out of range for a "
                 "float (Float64)", id="f-past-float"),
    ("t", "yesterday", "value 'yesterday' on column 't' is not an ISO 8601 date and time "
                       "(DateTime64(3))"),
    ("t", "1899-12-31T00:00:00", "value '1899-12-31T00:00:00' on column 't' is out of the "
                                 "supported date range (DateTime64(3))"),
    ("t", [], "value '[]' on column 't' is not a date and time (DateTime64(3))"),
    ("d", "2024-13-01", "value '2024-13-01' on column 'd' is not a date (YYYY-MM-DD) (Date)"),
    ("d", 5, "value '5' on column 'd' is not a date (Date)"),
    ("b", "yes", "value 'yes' on column 'b' is not a boolean (Bool)"),
    ("id", "nope", "value 'nope' on column 'id' is not a UUID (UUID)"),
    ("arr", 5, "value '5' on column 'arr' is not an array (Array(Int16))"),
    ("arr", [1, None], "value '[1,null]' on column 'arr' has a null item (Array(Int16))"),
    ("arr", [1, "x"], "value '[1,\"x\"]' on column 'arr' is not an integer (Array(Int16))"),
    ("arr", [40000], "value '[40000]' on column 'arr' is out of range [-32768, 32767] "
                     "(Array(Int16))"),
    ("n", "four", "value 'four' on column 'n' is not an integer (Nullable(Int32))"),
    ("i", None, "value null on column 'i' is not Nullable"),
    ("s", None, "value null on column 's' is not Nullable"),
])
def test_a_wrong_value_quarantines_the_row_with_its_reason(full, column, given, reason):
    event = {**FULL_CLEAN, column: given}
    batch = check(full, event)
    assert batch.rows == []
    assert batch.quarantined == []  # written compact
    [row] = quarantined(full, batch)
    assert row.error_columns == [column]
    assert row.errors == [reason]
    # The original values are kept, as text, for every column.
    assert set(row.values) == {c.name for c in full.datasource.columns}
    assert row.values["s"] == event["s"] if column != "s" else row.values["s"] is None
    assert row.values["nested"] == "deep"


def test_a_long_value_is_cut_in_the_reason():
    checker = RowChecker(datasource("`i` Int32"))
    [row] = quarantined(checker, check(checker, {"i": "x" * 1000}))
    assert row.errors == [f"value '{'x' * 200}' on column 'i' is not an integer (Int32)"]
    assert row.values["i"] == "x" * 1000


def test_missing_values_nulls_and_defaults(full):
    missing = {k: v for k, v in FULL_CLEAN.items() if k not in {"i", "a", "n", "lc", "dflt"}}
    [row] = quarantined(full, check(full, missing))
    assert row.error_columns == ["i", "nested"]
    assert row.errors == [
        "missing value for column 'i' (no 'i' in the event and no DEFAULT)",
        "missing value for column 'nested' (no '$.a.b' in the event and no DEFAULT)",
    ]
    assert row.values["i"] is None and row.values["n"] is None
    # Nullable columns become null; a column with a DEFAULT is left for the engine to fill,
    # whether it was missing or null.
    for event in ({**missing, "i": 1, "a": {"b": "x"}},
                  {**missing, "i": 1, "a": {"b": "x"}, "n": None, "dflt": None}):
        [written] = check(full, event).rows
        assert b'"n":null' in written and b'"lc":null' in written
        assert b'"dflt"' not in written


def test_every_bad_column_is_reported_at_once(full):
    [row] = quarantined(full, check(full, {**FULL_CLEAN, "i": "x", "b": "maybe", "a": {}}))
    assert row.error_columns == ["i", "b", "nested"]
    assert len(row.errors) == 3


def test_lines_that_are_not_events_are_quarantined_whole(full):
    batch = CheckedBatch()
    full.check_line(b'{"i": 1,}', batch)
    full.check_line(b"[1, 2]", batch)
    full.check_line(b"{\xff\xfe}", batch)
    assert batch.rows == []
    # Lines that are not JSON are kept as sent, for the engine to quarantine.
    assert batch.broken == b'{"i": 1,}\n{\xff\xfe}\n' and batch.broken_count == 2
    [not_object] = batch.quarantined
    assert not_object.error_columns == ["__row__"]
    assert not_object.errors == ["the event is not a JSON object"]
    assert not_object.values["i"] == "[1,2]"  # the line, in the first column
    assert set(not_object.values.values()) == {"[1,2]", None}
    assert batch.quarantined_count == 3


def test_only_lines_shaped_like_objects_reach_the_checks(full):
    """Every other non-blank line is left in the piece for the engine, which must see
    the same lines as rejected: a lone `{`, a line cut short, `1`."""
    window = b'{"i": 1}\r\n  {\n{"i": 2\n1\n\n \t\n{"i": 3} \n{"i": 4} x\n{}'
    [batch] = checked_batches(full, window)
    assert batch.rejected == window
    assert batch.quarantined_count == 3  # {"i": 1}, {"i": 3} and {} lack columns
    [clean] = checked_batches(full, b'{"i": 1}\n\n  \r\n{}')
    assert clean.rejected == b""


def test_a_bare_nan_gets_a_reason_not_invalid_json(full):
    """orjson refuses NaN; json reads it, so the row is quarantined with the column's
    reason instead of the whole line being called invalid JSON."""
    batch = CheckedBatch()
    full.check_line(encode(FULL_CLEAN)[:-1] + b', "f": NaN}', batch)
    [row] = quarantined(full, batch)
    assert row.errors == ["value 'NaN' on column 'f' is not a number (Float64)"]


@pytest.mark.parametrize("column_type", ["Int128", "UInt256", "Array(Nullable(Int128))"])
def test_integers_over_64_bits_arrive_whole(column_type):
    """orjson would read 2**100 + 1 as a float and write 2**100: the digits must survive."""
    checker = RowChecker(datasource(f"`big` {column_type}, `s` String"))
    value = 2**100 + 1
    given = [value] if column_type.startswith("Array") else value
    batch = CheckedBatch()
    checker.check_line(encode({"big": given, "s": "x"}), batch)
    assert batch.quarantined_count == 0
    assert batch.rows == [encode({"big": given, "s": "x"})]
    assert str(value).encode() in batch.rows[0]


def test_events_with_none_of_the_columns_are_kept_once_with_how_many():
    """Their quarantine rows are all alike, whatever unknown keys they hold."""
    checker = RowChecker(datasource("`s` String, `n` Nullable(Int8), `i` Int8"))
    batch = CheckedBatch()
    for line in [b"{}", b'{"zz": 1}', b'{"other": [1]}', b'{"s": "x"}']:
        checker.check_line(line, batch)
    assert batch.bare == {b'{"missing_at":[1,3]}': 3}
    assert batch.compact_count == 1 and batch.quarantined_count == 4


def test_encode_makes_half_utf16_pairs_the_replacement_character():
    """Python reads `"\\ud800"` into a text orjson cannot write; written as an escape, the
    engine refused the insert. Every half pair, in keys and values, becomes U+FFFD; whole
    pairs and integers over 64 bits are written as they are."""
    value = {"a\ud800": ["\udc00x", "\ud83d\ude00"], "n": 2**70, "ok": "é"}
    assert json.loads(encode(value)) == {"a\ufffd": ["\ufffdx", "😀"], "n": 2**70, "ok": "é"}
    assert encode("\ud800\\").decode() == '"\ufffd\\\\"'


@pytest.mark.parametrize("schema", ["`i` Int32", "`i` Int128"])
def test_a_line_nested_too_deep_for_json_is_not_json(schema):
    """orjson refuses NaN and json reads it, recursing into nested values: nested past
    the interpreter's depth, the line is quarantined as not JSON (as orjson refuses one
    past its own), never a crash. A datasource of wide integers parses with json first."""
    checker = RowChecker(datasource(schema))
    for line in (b'{"i":NaN,"b":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                 b'{"i":1,"b":' + b"[" * 100_000 + b"]" * 100_000 + b"}"):
        batch = CheckedBatch()
        checker.check_line(line, batch)
        assert (batch.broken_count, batch.row_count) == (1, 0)


def test_a_pretty_printed_object_or_an_array_body_becomes_ndjson():
    assert as_ndjson(b'{\n  "i": 1,\n  "s": "a"\n}\n') == b'{   "i": 1,   "s": "a" }'
    assert as_ndjson(b'[{"i": 1}, {"i": 2}]') == b'{"i": 1}\n{"i": 2}'
    ndjson = b'{"i": 1}\n{"i": 2}\n'
    assert as_ndjson(ndjson) is ndjson  # NDJSON as it came, not a copy of it
    # A first line that is an object alone, then blanks: the same object, either way.
    assert as_ndjson(b' {"i": 1} \r\n\n  ') == b' {"i": 1} \r\n\n  '
    assert as_ndjson(b'{"i": NaN}\n{"i": 2}') == b'{"i": NaN}\n{"i": 2}'
    # Nested past json's depth: left as it is (its lines are checked one by one).
    deep = b"[" * 100_000 + b"]" * 100_000
    assert as_ndjson(deep) == deep
    assert as_ndjson(b'{\n"a":' + deep + b"}") == b'{\n"a":' + deep + b"}"


@pytest.mark.parametrize("schema", ["`s` String, `n` Nullable(Int8), `i` Int8",
                                    "`s` String, `i` Int8 `json:$.a.i`"])
def test_a_line_sent_again_gets_what_its_first_check_gave(schema):
    """The sift gives lines back as many times as they came, one after the other: a
    repeated line's outcome is added again, not checked again, and the batches are what
    checking each line would make (good rows, compact and bare rows, lines that are not
    JSON, whole quarantine rows), across batch boundaries too."""
    kinds = [b'{"s": "a", "i": 1}', b'{"s": "b", "i": 1, "a": {"i": 2}}', b'{"s": "x"}', b"{}",
             b'{"i": "x"}', b"{x}", b'{"s": NaN, "i": 1, "a": {"i": 1}}', b'{"i": [1]}']
    lines = [kind for n, kind in enumerate(kinds * 3) for _ in range(n % 5 + 1)]
    checker = RowChecker(datasource(schema))

    def merged(batches: list[CheckedBatch]) -> tuple:
        """Everything the batches hold, in order (bare rows by count)."""
        bare: Counter[bytes] = Counter()
        for batch in batches:
            bare.update(batch.bare)
        return (b"".join(part for b in batches for part in b.row_parts()),
                b"".join(b.compact for b in batches), b"".join(b.broken for b in batches), bare,
                [(q.values, q.errors) for b in batches for q in b.quarantined])

    replayed = list(checked_batches(checker, b"\n".join(lines), rows=4, max_rows=7))
    # The same lines, each checked: a line is never next to itself alone in a window.
    one_by_one = [batch for line in lines
                  for batch in checked_batches(checker, line, rows=4, max_rows=7)]
    assert merged(replayed) == merged(one_by_one)
    assert sum(b.quarantined_count + b.row_count for b in replayed) == len(lines)
    assert len(replayed) > 3
