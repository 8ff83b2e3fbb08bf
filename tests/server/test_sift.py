"""The sift stores exactly what the Python checks store.

When a body is mostly bad lines the engine takes the rest of it (`sift`): it keeps the
lines that surely lack a required column, unchecked, and `settle` checks them in Python
before the quarantine is read. Random events, written into a real engine both ways,
must leave the same rows and the same quarantine, reasons included; and the engine
must have done its share, or the comparison proves nothing.
"""

from __future__ import annotations

import json
import math
import random
import re
import subprocess
import sys
from collections import Counter

import pytest

from lib.tinybird_local import batch_writes
from tests.support.servers import ROOT

SCHEMA = """SCHEMA >
    `i8` Int8,
    `u8` UInt8,
    `i16` Int16,
    `u64` UInt64,
    `i64` Int64,
    `ni32` Nullable(Int32),
    `s` String,
    `sd` String DEFAULT 'none',
    `lc` LowCardinality(String),
    `ns` Nullable(String),
    `dt` DateTime,
    `dt64` DateTime64(3, 'UTC'),
    `f` Float64,
    `d` Date,
    `b` Bool,
    `arr` Array(String),
    `ai` Array(Int32),
    `an` Array(Nullable(String)),
    `u` UUID,
    `e` Enum8('a' = 1, 'b' = 2)
"""
COLUMNS = ["i8", "u8", "i16", "u64", "i64", "ni32", "s", "sd", "lc", "ns", "dt", "dt64", "f",
           "d", "b", "arr", "ai", "an", "u", "e"]
EVENT = {"i8": 1, "u8": 2, "i16": 3, "u64": 4, "i64": 5, "ni32": 6, "s": "s", "sd": "sd",
         "lc": "lc", "ns": "ns", "dt": "2024-06-01 12:00:00", "dt64": "2024-06-01T12:00:00.000Z",
         "f": 1.5, "d": "2024-06-01", "b": True, "arr": ["a"], "ai": [1, 2], "an": ["a", None],
         "u": "9f1c1e4e-8a7d-4c1b-9a55-3c3f1d2b6a10", "e": "a"}
VALUES: list[object] = [
    # Texts: plain, empty, with digits, signs and blanks, unicode, escapes, long.
    "x", "", "12", "+5", "-7", "007", "1.5", "1e3", " 12", "12 ", "1 2", "x-0", "-0", "٣",
    "1234567890123456789", "-123456789012345678", "99999999999999999999999", "\t7",
    " 300 ", "\x1c12\x1f", " 1 2 ", "\u00a012", " 1234567890123456789 ", "\u0661\u0662",
    "\u3000-\u0967\u0966\u2028", "\U0001d7ce9", "\u0661" * 19, "\u00b2", "\u2167", "x\u0661",
    "\ud800x", "a\udc00", "\udc00\ud800", "\ud800\\", "\\ud800", "\ud83d\ude00\udc00",
    "2024-06-01T12:00:00Z", "2024-06-01 12:00:00", "2024", "abc", "é", "日本", "😀x",
    "2024-06-01T12:00:00.000Z", "2024-02-29 23:59:59.123456", "2023-02-29T00:00:00Z",
    "2024-06-01T24:00:00Z", "2024-06-01T12:60:00", "1899-12-31 23:59:59", "1900-01-01 00:00:00",
    "2299-12-31T23:59:59Z", "2300-01-01T00:00:00Z", "2024-06-01T12:00:00.1234567Z",
    "2024-06-01T12:00:00+02:00", "2024-6-01 12:00:00", "0000-01-01 00:00:00",
    "2024-06-01T12:00:00-23:59", "2024-06-01T12:00:00+24:00", "2024-06-01T12:00:00+02:60",
    "1900-01-01T00:30:00+01:00", "2299-12-31T23:30:00-01:00", "1901-01-01T00:30:00+01:00",
    "2024-06-01T12:00:00+23:59", "2024-06-01T12:00:00-23:99", "2024-06-01T12:00:00+00:99",
    "2024-06-01", "2024-13-01", " 2024-06-01T12:00:00Z\u3000", "2024-06-01T12:00Z",
    "2024-06-01Z", "2024-06-01T12:00:00.5+02:00", "1900-01-01", "2299-12-31 23:59:59.999999",
    "2024-02-29", "2023-02-29", "\u0662\u0660\u0662\u0664-06-01",
    'a"b', "a\\b", "line\nbreak", "tab\tin", "/", "y" * 250, "NaN", "Infinity", "\u2028",
    # Texts for numbers, booleans, days and UUIDs.
    "1_000", "inf", "-Infinity", "nan", "NAN", " nan", "-nan", ".5", "5.", "+.5e-3", "1e5 ",
    "infinity\u3000", "\uff11\uff12", "1e", "true", "TRUE", "False", "0", "1", "yes", " 1",
    "2024-06-01x", "20240601", "2024-W22-6", " 2024-06-01", "2024-02-30", "9999-12-31",
    "0001-01-01", "2024/06/01", "\u0661\u0662\u0663\u0664-06-01",
    "9f1c1e4e-8a7d-4c1b-9a55-3c3f1d2b6a10", "urn:uuid:9f1c1e4e-8a7d-4c1b-9a55-3c3f1d2b6a10",
    "{9F1C1E4E8A7D4C1B9A553C3F1D2B6A10}", "9f1c1e4e-8a7d-4c1b-9a55-3c3f1d2b6a1",
    "+f1c1e4e8a7d4c1b9a553c3f1d2b6a10", " 9f1c1e4e8a7d4c1b9a553c3f1d2b6a10",
    "9f1c1e4e-8a7d-4c1b-9a55-3c3f1d2b6a1g", "{{9f1c1e4e8a7d4c1b9a553c3f1d2b6a10}",
    "-9223372036854775808", "9223372036854775808", "18446744073709551615", "0" * 25 + "42",
    "+" + "0" * 40 + "1", "9" * 50, "-" + "0" * 45, "1" * 38, "1" * 39, " -" + "\u0660" * 30 + "7",
    "x2024-06-01", "T12:00:00", "12:00", "+2024-06-01", "202", "2024-06-01T12:00",
    "2024-06-01T12:00:00+0200", "2024-W22-6T12:00:00", "20240601T120000Z",
    "2024-06-01x12", "2024-06-01 12:30Z", "2024-06-01T12:00:00,5", "2024-06-01T24",
    "2024-06-01T12:00:00.1234567+01", "2024-06-01\u00e923:59:59-0130", "2024-06-01T12+2400",
    # fromisoformat's own leniencies (Python 3.11, in C).
    "2024-06-01T12x+01:00", "2024-06-01T12:+01", "2024-06-01T12.5", "2024-06-01T12:30:45:123",
    "2024-06-01T123045123", "2024-06-01T1230", "2024-06-01T12:30x", "2024-06-01T0732499",
    "2024-06-01T12+01:00:30.5", "2024-06-01T12+01x", "2024-06-01T12:1000", "2024-06-01T12Z+",
    "2024-06-01T12:30\u00e9+01:00", "2024-06-01T12:30:45.1234567abc+01:00", "2024-06-01T12\x00",
    "2024-06-01T12:30:45,\ud800+01", "2024-06-01T12:30:45,\ufffd+01", "2024-06-01\ud80012:30",
    # Days in fromisoformat's other forms, and years outside 1900-2299.
    "2024W22", "2024W226", "2024-W22", "2024-W22-6", "2020W53", "2021-W53-1", "2024W01123",
    "2024W011234", "2024-W01-12", "2024-W0112", "2024-W01-", "9999-W52-6", "0001W011",
    "0000W011", "2024W00", "2024W018", "20240230", "20240229T12:00Z", "00010101", "9999-12-31",
    "9999-12-31T23:00:00-05:00", "1899-12-31T23:00:00Z", "2300-01-01", "0001-01-01T00:00:00",
    "1900-01-01T00:30:00+01:00", "1900-W01-1T00:30+01:00", "2299-W52-7T23:30-01:00",
    "2024-06-01xx", "2024W01x", "2024W011\n12", "2024-W22-6T12:00:00\ud800",
    # Numbers: integers at the types' edges, beyond 64 bits, fractions, exponents.
    0, 1, -1, 127, 128, -128, -129, 255, 256, 32767, 32768, -32769, 2**31, 2**63 - 1, 2**63,
    2**64 - 1, 2**64, -(2**63), 10**18, 10**19, 1.0, 1.5, -0.0, 1e2, 12.5e-1, 0.1, -0.25,
    1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 2.5e-9, 123456.789, 1234567890.12345, 9007199254740993.0,
    1e15 + 0.5, 1e16, 1e21, 5e-324, 1.7976931348623157e308, 1e15, 32768.0, -129.0,
    math.nan, math.inf, -math.inf, [math.nan], {"k": math.inf}, [None], ["a", None, "b"],
    1e20, -2.5e17, 1e300, 1.5e-6, -9.99e-6, 1.2345678901234568e23, 1e38, 1e39, 9.3e18, 1.8e19,
    ["\u2028"], ["\x0b\x1f"], {"a": 1, "\u00e9": ["\\", "\n"]}, ["\ud800"], ["\x03NaN"],
    # The rest.
    True, False, None, [], ["a"], [1, None], {}, {"k": 1}, [1, 2], [[1], ["b"]], [True],
    ["é"], ['a"b'], [1.5], [1.0], [{"k": 1}], ["/"], {"a": [1, "b"], "c": None}, {"n": {"m": 1}},
    {"k": "é"}, {"k": 1.0},
]
UNKNOWN_KEYS = ["zz", "extra", "S", "i8 "]
# Lines that are not events, or not JSON, or not objects: the sift must route them too.
OTHER_LINES = ["1", "[1]", "{x}", "{", '{"i8": 1', "  ", "", '"text"', "{} trailing", "null",
               " 1 \r", "\t[1] ",
               '  {"i8": "x"}  ', '{"i8": NaN}', '{"s": "\\u0041"}', '{"s": "\\ud800x"}',
               '{"i8": 1, "s": "\\udc00"}', '{"s": "\\ud83d\\ude00"}', '{"s": {"k": 1, "k": 2}}',
               '{"i8": {"k": 1, "n": {"k": 2}}}', '{"dt": [{"k": 1}, {"k": 1, "k": 3}]}',
               '{NaN: 1}', '{"i8": -NaN}', '{"i8": NaNx}', '{"s": "\\u0003NaN", "i8": NaN}',
               '{"s": "\\u0003Infinity"}', '{"i8" : "NaN", "NaN" :Infinity}',
               # Numbers as a client may write them, in arrays and objects too.
               '{"s": [1.50, 1E5, -0.0], "i8": 2.50}', '{"i8": {"k": 1e16}, "n": 0.1e-2}',
               '{"zz": [12345678901234567890.5], "i8": "x"}', '{"i8": 1.2345678901234567890123}',
               '{"arr": [1, 2.0, {"k": [3e-7]}], "s": 1E+2, "x": [0.000001]}',
               # Whole numbers past 64 bits (floats to orjson), at its edges, and past the
               # largest float (json, which reads NaN, takes it as infinity).
               '{"i64": -9223372036854775809, "s": 123456789012345678901234567890}',
               '{"u64": 18446744073709551616, "i8": 18446744073709551615, "zz": -1e400}',
               '{"i64": -9223372036854775808.0, "f": 99999999999999999999999}',
               '{"i16": 9223372036854775808, "ns": [12345678901234567890123]}',
               '{"s": NaN, "i8": 1%s}' % ("0" * 320), '{"i8": 1%se2, "s": "\\ud800"}' % ("0" * 307),
               '{"f": 1%s}' % ("0" * 320), '{"i8": 12345678901234567890123, "s": "\\u0041"}']


def dumps(value: object, **options: object) -> str:
    """json.dumps, with \\u escapes where a text holds half a UTF-16 pair (a body is
    UTF-8, which cannot hold one)."""
    halves = re.search("[\ud800-\udfff]", json.dumps(value, ensure_ascii=False))
    return json.dumps(value, **{**options, "ensure_ascii": bool(halves)
                                or options.get("ensure_ascii", True)})  # type: ignore[arg-type]


def random_line(rng: random.Random) -> str:
    """An event of a few keys (most lack a required column), sometimes all of them,
    written compactly, with spaces, or with a key given twice."""
    if rng.random() < 0.1:
        event = {**EVENT, rng.choice(COLUMNS): rng.choice(VALUES)}
    else:
        keys = rng.sample(COLUMNS + UNKNOWN_KEYS, rng.choice([0, 1, 1, 1, 2, 2, 3, 5]))
        event = {key: rng.choice(VALUES) for key in keys}
    style = rng.random()
    if style < 0.4:
        return dumps(event, separators=(",", ":"), ensure_ascii=False)
    if style < 0.7:
        return dumps(event, ensure_ascii=False)
    if style < 0.8 and event:
        key = rng.choice(list(event))
        return dumps(event, ensure_ascii=False)[:-1] + f", {json.dumps(key)}: " \
            f"{dumps(rng.choice(VALUES), ensure_ascii=False)}}}"
    if style < 0.9:
        return json.dumps(event)  # \u escapes: left to Python
    return rng.choice(OTHER_LINES)



@pytest.mark.parametrize("line", [b"", b'{"age":"x"}', b"y" * 300])
def test_the_sifts_pieces_are_whole_lines_bounded_in_bytes_and_in_lines(line):
    """Tiny lines go in pieces of about `SIFT_PIECE_LINES` lines, but never under half of
    `SIFT_PIECE_BYTES`; long ones in pieces of about `SIFT_PIECE_BYTES`; every piece
    ends after a newline."""
    body = b"".join(line + b"%06d\n" % n for n in range(300_000))
    size = len(line) + 7
    start, pieces = 0, []
    while start < len(body):
        cut = batch_writes._piece_end(body, start, len(body))
        assert body[cut - 1:cut] == b"\n"
        pieces.append(cut - start)
        start = cut
    assert start == len(body)
    full = pieces[:-1]
    lines_cap, bytes_cap = batch_writes.SIFT_PIECE_LINES, batch_writes.SIFT_PIECE_BYTES
    expected = max(min(lines_cap, bytes_cap // size + 1), bytes_cap // 2 // size + 1) * size
    assert all(expected - size <= piece <= expected + size for piece in full), (
        expected, full)

def write_both_ways(lines: list[str], piece_bytes: int, **options: object) -> dict:
    """`sift_parity`'s output for `lines` (`options`: see `sift_parity`)."""
    given = json.dumps({"schema": SCHEMA, "lines": lines, "piece_bytes": piece_bytes,
                        **options})
    result = subprocess.run([sys.executable, "-m", "tests.support.sift_parity"], cwd=ROOT,
                            input=given, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


# Python's side writes the lines that cannot be events itself (seed 1), or through the
# sift's tables (seed 2).
@pytest.mark.parametrize("seed, few_rejected", [(1, 10**6), (2, 0)])
def test_the_engine_checks_store_what_the_python_checks_store(seed, few_rejected):
    rng = random.Random(seed)
    lines = [random_line(rng) for _ in range(3000)]
    # Each line twice: alike lines are checked once by the engine, and counted twice.
    lines += lines[:500]
    rng.shuffle(lines)
    # Small pieces, so the body goes to the engine in many inserts.
    out = write_both_ways(lines, piece_bytes=16384, window_bytes=65536,
                          few_rejected=few_rejected)
    python, engine = out["by_python"], out["by_engine"]
    assert engine["counts"] == python["counts"]
    assert sum(python["counts"]) == 100 + sum(1 for line in lines if line.strip())
    assert engine["rows"] == python["rows"]
    assert len(engine["quarantine"]) == python["counts"][1]
    by_engine, by_python = (Counter(json.dumps(row) for row in side["quarantine"])
                            for side in (engine, python))
    assert by_engine - by_python == {} and by_python - by_engine == {}
    # The engine quarantined a good share of the bad lines itself, in one call for the
    # whole rest of the body (many of these lines are of kinds it leaves to Python: see
    # the test below for the rest).
    assert out["sifted"]["calls"] == 1
    assert out["sifted"]["quarantined"] > 0.25 * python["counts"][1]


def test_a_settle_cut_short_after_its_writes_writes_nothing_twice():
    """A crash after the settle's writes, before it empties the unchecked lines, makes
    the next settle write the same rows again: the engine drops those writes (their
    token), so the quarantine holds each line once, as the Python checks store it."""
    rng = random.Random(3)
    lines = [random_line(rng) for _ in range(1500)]
    out = write_both_ways(lines, piece_bytes=16384, window_bytes=65536, settle_cut_short=2)
    python, engine = out["by_python"], out["by_engine"]
    assert out["sifted"]["quarantined"] > 0.25 * python["counts"][1]
    assert engine["counts"] == python["counts"]
    assert Counter(map(json.dumps, engine["quarantine"])) == Counter(
        map(json.dumps, python["quarantine"]))


def test_a_settle_between_two_sifts_keeps_both():
    """A read of the quarantine between two sift calls, of one body sent twice under one
    import id, settles the first; the second, alike line for line and written in the same
    second, is settled in full too, not taken for the first one written again."""
    lines = ['{"s": "x"}'] * 400
    out = write_both_ways(lines, piece_bytes=16384, window_bytes=400, bodies=2,
                          settle_each_sift=1)
    python, engine = out["by_python"], out["by_engine"]
    assert out["sifted"]["calls"] == 2
    assert python["counts"] == engine["counts"] == [0, 1000]
    assert len(engine["quarantine"]) == len(python["quarantine"]) == 1000


def test_a_settle_lets_other_sifts_run_while_it_checks_and_keeps_their_lines():
    """While a settle checks its lines in Python, another body's sift goes on (it would
    wait forever if the settle held the sift's lock); its lines are not emptied by that
    settle, and the next one writes them."""
    rng = random.Random(4)
    lines = [random_line(rng) for _ in range(600)]
    meanwhile = [json.dumps({"s": f"meanwhile {n}"}) for n in range(50)]
    out = write_both_ways(lines, piece_bytes=16384, window_bytes=65536,
                          sift_meanwhile=meanwhile)
    python, engine = out["by_python"], out["by_engine"]
    assert engine["counts"] == python["counts"]
    kept = [row for row in engine["quarantine"]
            if str(row[COLUMNS.index("s")]).startswith("meanwhile ")]
    assert sorted(row[COLUMNS.index("s")] for row in kept) == sorted(
        json.loads(line)["s"] for line in meanwhile)
    others = [row for row in engine["quarantine"] if row not in kept]
    assert Counter(map(json.dumps, others)) == Counter(map(json.dumps, python["quarantine"]))


def test_the_engine_quarantines_every_plain_event_that_lacks_a_column_itself():
    """Objects of strings, integers, fractions, NaN and infinities, arrays, objects,
    booleans and nulls that lack a required column, in columns of every kind the engine
    checks, written compactly or with spaces, with \\u escapes, nested
    values in other keys, a column given twice, days and times in every form
    fromisoformat reads, of any year: the floods the sift is for. Every one, bad values
    included, is the engine's (values it leaves to Python are left out here)."""
    rng = random.Random(3)
    scalars: list[object] = [0, 1, -1, 127, 128, -129, 255, 256, 32768, -(10**18 - 1), 10**17,
                             1.5, -0.25, 1e-7, 123456.789, 1.0, 300.0, -0.0, 1e15, True,
                             math.nan, math.inf, -math.inf, 1e-6, -1.5e-6, 1e16, 1e20,
                             -2.5e17, 1e300, 5e-324, 9.3e18, 1e39,
                             False, None, [], [1, 2],
                             [["a"], [None, True]], {"k": 1}, {"a": [1, "b"], "c": None},
                             [{"n": {"m": "x"}}], ["é", "日本"], {"k": "😀"}, {"é": [1, "x"]},
                             ["a\\b", 'q"', "\n\t\x00"]]
    texts = ["x", "", "abc", 'a"b', "a\\b", "line\nbreak", "tab\tin", "/", "y" * 250]
    pools = {**{column: scalars + texts + ["12", "+5", "-7", "007", "1 2", " 12", "\t-7\n",
                                           "1234567890123456789", "0" * 30 + "255", "9" * 60,
                                           "-9223372036854775809", "18446744073709551616",
                                           " 99999 ", "\x1f+1\x0b", " ", "\u0661\u0662",
                                           "\u00a0\u0967\u3000", "é", "日本"]
                for column in ("i8", "u8", "i16", "u64", "i64", "ni32")},
             **{column: scalars + texts + ["12", "é", "日本", "😀x", " 12 ", "2024-06-01", "x-0.5e",
                                           "1234567890123456789012", "x%s" % (10**30),
                                           "\ud800x", "a\udc00\\", "\udc00\ud800"]
                for column in ("s", "sd", "lc", "ns", "zz", "extra")},
             **{column: scalars + texts + ["2024-06-01T12:00:00.000Z", "2024-06-01 12:00:00",
                                            "1900-01-01 00:00:00.5", "2299-12-31T23:59:59Z",
                                            "2024-06-01", "2024-06-31", " 2024-06-01 ",
                                            "2024-06-01T12:00:00+05:30", "2024-06-01T25:00:00",
                                            "2024-06-01T12:00:00-24:00", "日本", "x12",
                                            "12:00", "+2024-06-01", "\u0662\u0660\u0662\u0664",
                                            "2024-06-01T12:00", "2024-06-01 12",
                                            "2024-06-01T12:00:00,123456789Z",
                                            "2024-06-01x12:00+0530", "2024-06-01T12:00-24",
                                            "2024-06-01T12x+01:00", "2024-06-01T123045123",
                                            "2024-06-01T12:30x", "2024-06-01T12:1000",
                                            "2024-06-01T12+01:00:30.5", "2024-06-01T0732499",
                                            "2024W226", "2024-W22-6T12:00", "2020W53T12",
                                            "2021-W53", "20240601T12", "20240230",
                                            "0001-01-01T00:00", "9999W52", "9999W527",
                                            "2300-01-01 00:00:00", "1899-12-31T23:59:59Z",
                                            "0000-01-01", "2024W011234"]
                for column in ("dt", "dt64")},
             "f": scalars + texts + ["12", " -1.5e3 ", ".5", "5.", "inf", "-Infinity", "NaN",
                                     "nan", " nan", "+nan", "\u0661.\u0665", "1e", "1.2.3"],
             "b": scalars + texts + ["true", "FALSE", "0", "1", " 1", "yes", "01"],
             "d": scalars + texts + ["2024-06-01", "2024-06-01T12:00:00Z", " 2024-02-29 ",
                                     "2023-02-29", "2024-13-01", "日本", "1900-01-01x",
                                     "x2024-06-01", "06-01", "+2024-06-01", "2024W226",
                                     "2024-W22-6", "2021-W53-1", "20240601", "20240601xx",
                                     "0001-01-01", "9999-W52-6", "0000-01-01", "2024-W22-6x",
                                     "2024W01", "2024W0", "2024-W01-"],
             **{column: scalars + texts + [["a", None], [None], ["x", 1, True, [None]]]
                for column in ("arr", "an")},
             "ai": [value for value in scalars + texts if not isinstance(value, list)],
             "u": scalars + texts + ["9f1c1e4e-8a7d-4c1b-9a55-3c3f1d2b6a10", "12",
                                     "urn:uuid:9f1c1e4e-8a7d-4c1b-9a55-3c3f1d2b6a10",
                                     "{9F1C1E4E8A7D4C1B9A553C3F1D2B6A10}", "uuid:",
                                     "9f1c1e4e-8a7d-4c1b-9a55-3c3f1d2b6a1"]}
    lines = []
    for _ in range(2000):
        keys = rng.sample(sorted(pools), rng.choice([0, 1, 2, 3]))
        event = {key: rng.choice(pools[key]) for key in keys}
        arrays = any(isinstance(value, (list, dict)) for value in event.values())
        if rng.random() < 0.2:
            event["extra"] = [1, {"deep": ["x", None]}]
        line = dumps(event, ensure_ascii=not arrays and rng.random() < 0.2,
                          separators=rng.choice([(",", ":"), (", ", ": ")]))
        if event and not arrays and rng.random() < 0.1:  # a column twice: the last counts
            key = rng.choice(list(event))
            line = f'{{{json.dumps(key)}: {dumps(rng.choice(pools[key]))}, {line[1:]}'
        lines.append(line)
    out = write_both_ways(lines, piece_bytes=1 << 20)
    python, engine = out["by_python"], out["by_engine"]
    assert python["counts"] == engine["counts"] == [0, 2100]
    assert Counter(map(json.dumps, engine["quarantine"])) == Counter(
        map(json.dumps, python["quarantine"]))
    assert out["sifted"] == {"calls": 1, "quarantined": 2000}


def test_a_body_the_engine_cannot_check_after_lines_it_can_is_stored_the_same():
    """Lines that name every required column (here as texts in a list, so the engine
    cannot tell them from events that hold them), after 100 lines the engine could
    judge: the sift takes the rest in one call and gives every line back to Python;
    what is stored is the same."""
    names = [json.dumps(column) for column in COLUMNS]
    lines = [f'{{"n": {n}, "named": [{", ".join(names)}]}}' for n in range(3000)]
    out = write_both_ways(lines, piece_bytes=16384, window_bytes=65536)
    python, engine = out["by_python"], out["by_engine"]
    assert python["counts"] == engine["counts"] == [0, 3100]
    assert engine["quarantine"] == python["quarantine"]
    assert out["sifted"] == {"calls": 1, "quarantined": 0}


# One line in ten cannot be an event: the engine would give most lines back, so the sift
# is never called. Three lines in four cannot be events: after the first piece, the sift
# takes the whole rest of the body in one call.
@pytest.mark.parametrize("is_event, events, calls", [
    (lambda n: n % 10 != 0, 2700, 0),
    (lambda n: n % 4 == 0, 750, 1),
], ids=["mostly-events", "mostly-not-events"])
def test_the_share_of_lines_the_engine_can_judge_decides_the_sift(is_event, events, calls):
    lines = [json.dumps({**EVENT, "i64": n}) if is_event(n) else f"not an event {n}"
             for n in range(3000)]
    out = write_both_ways(lines, piece_bytes=16384, window_bytes=16384, prefix=0)
    python, engine = out["by_python"], out["by_engine"]
    assert python["counts"] == engine["counts"] == [events, 3000 - events]
    assert engine["rows"] == python["rows"]
    assert engine["quarantine"] == python["quarantine"]
    assert out["sifted"]["calls"] == calls
    # A call quarantines the rest of the body, but for its events.
    assert (out["sifted"]["quarantined"] > 2000) == bool(calls)


def test_a_key_spelled_with_an_escape_is_left_to_python():
    """`"\\u0069\\u0038"` is the key `i8`: a line that may spell a key with escapes is
    never taken as lacking it."""
    spelled = {column: EVENT[column] for column in COLUMNS if column != "i8"}
    escaped = json.dumps(spelled)[:-1] + ', "\\u0069\\u0038": 1}'
    # Alike lines too: the engine keeps them once, with how many came.
    lines = ([escaped] * 50 + [json.dumps({"s": n}) for n in range(200)] + ["{}"] * 30
             + ["{x}"] * 30 + ['{"i8": 1000}'] * 30)
    out = write_both_ways(lines, piece_bytes=16384)
    python, engine = out["by_python"], out["by_engine"]
    assert python["counts"] == engine["counts"] == [50, 390]
    assert engine["rows"] == python["rows"]
    assert Counter(map(json.dumps, engine["quarantine"])) == Counter(
        map(json.dumps, python["quarantine"]))
    assert out["sifted"]["quarantined"] == 290


@pytest.mark.parametrize("line", ["{}", "{x}", '{"i8": 1000}'])
def test_one_line_sent_many_times_is_quarantined_as_many_times(line):
    out = write_both_ways([line] * 300, piece_bytes=16384)
    python, engine = out["by_python"], out["by_engine"]
    assert python["counts"] == engine["counts"] == [0, 400]
    assert len(engine["quarantine"]) == len(python["quarantine"]) == 400
    assert Counter(map(json.dumps, engine["quarantine"])) == Counter(
        map(json.dumps, python["quarantine"]))
    assert out["sifted"] == {"calls": 1, "quarantined": 300}


def test_long_whole_numbers_in_a_flat_object_are_the_engines():
    """Whole numbers of 19 digits or more, in and past 64 bits, in a flat object: the
    engine reads them as orjson does (integers, or floats past 64 bits) and quarantines
    every such line that lacks a column itself; what is stored is the same."""
    numbers = [2**63 + 7, 2**64 - 1, 2**64, -(2**63) - 1, 10**25 + 3, -(10**40)]
    lines = [json.dumps({"i64": numbers[n % 6] + n, "s": numbers[(n + 1) % 6]})
             for n in range(3000)]
    out = write_both_ways(lines, 16384)
    python, engine = out["by_python"], out["by_engine"]
    assert python["counts"] == engine["counts"] == [0, 3100]
    assert engine["quarantine"] == python["quarantine"]
    assert out["sifted"]["quarantined"] == 3000
