"""The Events API over HTTP: NDJSON in, bad rows quarantined with reasons, nothing lost."""

from __future__ import annotations

import gzip
import json

import requests

from lib.bookings.generator import BookingGenerator
from lib.tinybird_local.batches import SIFT_AFTER, SIFT_MIN_BYTES

TOTALS_DATASOURCE = """
SCHEMA >
    `airline` String,
    `bookings` UInt64

ENGINE "SummingMergeTree"
ENGINE_SORTING_KEY "airline"
"""

TOTALS_PIPE = """
NODE totals
SQL >
    SELECT airline, count() AS bookings FROM events GROUP BY airline

TYPE materialized
DATASOURCE airline_totals
"""

TOTALS_ENDPOINT = """
NODE endpoint
SQL >
    SELECT airline, sum(bookings) AS bookings FROM airline_totals
    GROUP BY airline ORDER BY bookings DESC

TYPE endpoint
"""

APPEND_DATASOURCE = """
TOKEN "notes_append" APPEND

SCHEMA >
    `note` String `json:$.payload.text`,
    `level` Int8 `json:$.level` DEFAULT 3

ENGINE "MergeTree"
ENGINE_SORTING_KEY "level"
"""


PRICES_DATASOURCE = """
SCHEMA >
    `item` String,
    `price` Decimal(10, 2)

ENGINE "MergeTree"
ENGINE_SORTING_KEY "item"
"""


SERVER_FILES = {
    "datasources/airline_totals.datasource": TOTALS_DATASOURCE,
    "datasources/notes.datasource": APPEND_DATASOURCE,
    "datasources/prices.datasource": PRICES_DATASOURCE,
    "pipes/airline_totals_mv.pipe": TOTALS_PIPE,
    "pipes/airline_totals_api.pipe": TOTALS_ENDPOINT,
}

def post_events(server, name, body, token=None, headers=None, **params):
    headers = {"Authorization": f"Bearer {token or server.admin_token}", **(headers or {})}
    return requests.post(f"{server.url}/v0/events", params={"name": name, **params},
                         data=body, headers=headers, timeout=30)


def ndjson(events):
    return "".join(json.dumps(e) + "\n" for e in events).encode()


def test_ndjson_batch_is_written_202_by_default_200_with_wait(server):
    before = server.count("events")
    bookings = list(BookingGenerator(seed=1).bookings(50))
    response = post_events(server, "events", ndjson(bookings))
    assert response.status_code == 202
    assert response.json() == {"successful_rows": 50, "quarantined_rows": 0}
    response = post_events(server, "events", ndjson(bookings[:5]), wait="true")
    assert response.status_code == 200
    assert server.count("events") == before + 55


def test_mockingbird_values_land_typed(server):
    booking = BookingGenerator(seed=2).booking(timestamp="2024-06-01T12:00:00.123Z")
    booking["priority_boarding"] = True  # Mockingbird sends a JSON boolean
    response = post_events(server, "events", json.dumps(booking).encode(), wait="true")
    assert response.json() == {"successful_rows": 1, "quarantined_rows": 0}
    tid = booking["transaction_id"]
    row = server.sql(f"SELECT toString(timestamp) AS ts, priority_boarding AS pb FROM events "
                     f"WHERE transaction_id = '{tid}'")["data"][0]
    assert row == {"ts": "2024-06-01 12:00:00.123", "pb": 1}


def test_bad_rows_go_to_quarantine_with_reasons_and_good_rows_land(server):
    before = server.count("events")
    quarantined_before = server.count("events_quarantine")
    generator = BookingGenerator(seed=3)
    good = [generator.booking() for _ in range(3)]
    bad_age = {**generator.booking(), "age": "old"}
    bad_time = {**generator.booking(), "timestamp": "yesterday"}
    body = ndjson(good[:2]) + ndjson([bad_age]) + b"{not json\n" + ndjson([bad_time, good[2]])
    response = post_events(server, "events", body, wait="true")
    assert response.status_code == 200
    assert response.json() == {"successful_rows": 3, "quarantined_rows": 3}
    assert server.count("events") == before + 3
    assert server.count("events_quarantine") == quarantined_before + 3
    rows = server.sql("SELECT age, c__error_column, c__error, c__import_id FROM "
                      "events_quarantine ORDER BY insertion_date")["data"]
    by_column = {tuple(r["c__error_column"]): r for r in rows}
    assert by_column[("age",)]["age"] == "old"
    assert "'old' on column 'age'" in by_column[("age",)]["c__error"][0]
    assert "column 'timestamp'" in by_column[("timestamp",)]["c__error"][0]
    assert "invalid JSON" in by_column[("__row__",)]["c__error"][0]
    assert all(r["c__import_id"] for r in rows)


def test_out_of_range_and_missing_values_are_quarantined(server):
    booking = BookingGenerator(seed=4).booking()
    too_big = {**booking, "passport_number": 2**40}
    missing = {k: v for k, v in booking.items() if k != "airline"}
    response = post_events(server, "events", ndjson([too_big, missing]), wait="true")
    assert response.json() == {"successful_rows": 0, "quarantined_rows": 2}
    errors = server.sql("SELECT arrayJoin(c__error) AS e FROM events_quarantine")["data"]
    text = " ".join(e["e"] for e in errors)
    assert "out of range" in text
    assert "missing value for column 'airline'" in text


def test_gzip_body(server):
    before = server.count("events")
    body = gzip.compress(ndjson(BookingGenerator(seed=5).bookings(20)))
    response = post_events(server, "events", body, headers={"Content-Encoding": "gzip"},
                           wait="true")
    assert response.json()["successful_rows"] == 20
    assert server.count("events") == before + 20


def test_gzip_with_two_members_keeps_the_rows_of_both(server):
    before = server.count("events")
    generator = BookingGenerator(seed=6)
    body = (gzip.compress(ndjson(generator.bookings(7)))
            + gzip.compress(ndjson(generator.bookings(5))))  # what `cat a.gz b.gz` makes
    response = post_events(server, "events", body, headers={"Content-Encoding": "gzip"},
                           wait="true")
    assert response.json() == {"successful_rows": 12, "quarantined_rows": 0}
    assert server.count("events") == before + 12


def test_truncated_gzip_is_400_naming_it_and_writes_nothing(server):
    before = server.count("events")
    whole = gzip.compress(ndjson(BookingGenerator(seed=7).bookings(200)))
    response = post_events(server, "events", whole[: len(whole) // 2],
                           headers={"Content-Encoding": "gzip"}, wait="true")
    assert response.status_code == 400
    assert "gzip body is truncated" in response.json()["error"]
    assert server.count("events") == before


def test_corrupt_gzip_is_400_and_writes_nothing(server):
    before, quarantined = server.count("events"), server.count("events_quarantine")
    whole = bytearray(gzip.compress(ndjson(BookingGenerator(seed=8).bookings(200))))
    whole[len(whole) // 2] ^= 0xFF  # a flipped byte mid-stream: bad data or a bad CRC
    response = post_events(server, "events", bytes(whole),
                           headers={"Content-Encoding": "gzip"}, wait="true")
    assert response.status_code == 400
    assert "not valid gzip" in response.json()["error"]
    assert server.count("events") == before
    assert server.count("events_quarantine") == quarantined


def test_gzip_bomb_is_413_and_writes_nothing(server):
    before = server.count("events")
    bomb = gzip.compress(b" " * (64 * 1024 * 1024))
    response = post_events(server, "events", bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert server.count("events") == before


def test_body_over_limit_is_413(server):
    response = post_events(server, "events", b"x" * (11 * 1024 * 1024))
    assert response.status_code == 413
    assert "Too Large" in response.json()["error"]


def test_missing_or_unknown_name_is_400(server):
    response = requests.post(f"{server.url}/v0/events", data=b"{}",
                             headers=server.admin_headers(), timeout=30)
    assert response.status_code == 400
    assert "name" in response.json()["error"]
    assert post_events(server, "nope", b"{}").status_code == 400


def test_append_token_may_append_only_to_its_datasource(server):
    token = server.workspace.tokens["notes_append"].token
    response = post_events(server, "notes", b'{"payload": {"text": "hi"}}', token=token,
                           wait="true")
    assert response.json() == {"successful_rows": 1, "quarantined_rows": 0}
    # The JSONPath reached into the object; the missing level took its DEFAULT.
    assert server.sql("SELECT note, level FROM notes")["data"] == [{"note": "hi", "level": 3}]
    response = post_events(server, "events", b"{}", token=token)
    assert response.status_code == 403
    assert "APPEND" in response.json()["error"]
    read_only = server.workspace.tokens["top_airlines_read_static"].token
    assert post_events(server, "notes", b"{}", token=read_only).status_code == 403


def test_materialized_view_follows_new_events(server):
    token = server.jwt("airline_totals_api")

    def totals():
        response = requests.get(f"{server.url}/v0/pipes/airline_totals_api.json",
                                params={"token": token}, timeout=30)
        assert response.status_code == 200, response.text
        return {r["airline"]: r["bookings"] for r in response.json()["data"]}

    raw = {r["airline"]: int(r["n"]) for r in server.sql(
        "SELECT airline, count() AS n FROM events GROUP BY airline")["data"]}
    assert totals() == raw
    post_events(server, "events", ndjson([{**BookingGenerator(seed=6).booking(),
                                            "airline": "Fizz"}]), wait="true")
    assert totals()["Fizz"] == raw.get("Fizz", 0) + 1


def test_restart_keeps_rows_workspace_and_tokens(server_factory, tmp_path):
    first = server_factory(data_dir=tmp_path / "data")
    workspace = first.workspace
    response = post_events(first, "events", ndjson(BookingGenerator(seed=8).bookings(40)),
                           wait="true")
    assert response.json()["successful_rows"] == 40
    assert first.stop() == 0
    second = server_factory(data_dir=tmp_path / "data")
    assert second.workspace.workspace_id == workspace.workspace_id
    assert second.admin_token == workspace.admin_token
    assert second.count("events") == 40
    # A JWT minted before the restart still reads the endpoint.
    assert requests.get(f"{second.url}/v0/pipes/top_airlines.json",
                        params={"token": first.jwt()}, timeout=30).status_code == 200


def test_rows_the_engine_refuses_are_quarantined_one_by_one(server):
    # Decimal is not checked before the engine: the engine's refusal is the reason.
    body = (b'{"item": "a", "price": 1.5}\n{"item": "b", "price": "abc"}\n'
            b'{"item": "c", "price": 2}\n')
    response = post_events(server, "prices", body, wait="true")
    assert response.json() == {"successful_rows": 2, "quarantined_rows": 1}
    assert server.sql("SELECT item FROM prices ORDER BY item")["data"] == [
        {"item": "a"}, {"item": "c"}]
    bad = server.sql("SELECT item, price, c__error FROM prices_quarantine")["data"]
    assert [(r["item"], r["price"]) for r in bad] == [("b", "abc")]
    assert bad[0]["c__error"][0]


def test_extra_fields_in_events_are_ignored(server):
    booking = {**BookingGenerator(seed=9).booking(), "unexpected": {"nested": [1, 2]}}
    response = post_events(server, "events", ndjson([booking]), wait="true")
    assert response.json() == {"successful_rows": 1, "quarantined_rows": 0}


def test_duplicate_keys_and_nan_cannot_slip_past_the_checks(server):
    booking = BookingGenerator(seed=10).booking()
    line = json.dumps(booking)
    duplicate = line[:-1] + ', "age": "old", "age": 30}'  # the parser keeps the last one
    nan = line.replace(f'"age": {booking["age"]}', '"age": NaN')
    before = server.count("events")
    response = post_events(server, "events", (duplicate + "\n" + nan + "\n").encode(),
                           wait="true")
    body = response.json()
    assert body["successful_rows"] + body["quarantined_rows"] == 2
    assert body["quarantined_rows"] >= 1  # NaN is never an Int16
    landed = server.sql(f"SELECT age FROM events WHERE transaction_id = "
                        f"'{booking['transaction_id']}'")["data"]
    assert server.count("events") == before + body["successful_rows"]
    assert all(row["age"] == 30 for row in landed)


def test_large_body_in_chunks_keeps_every_row_and_one_import_id(server):
    before = server.count("events")
    quarantined_before = server.count("events_quarantine")
    bookings = list(BookingGenerator(seed=12).bookings(12_000))
    for index in (10, 6_000, 11_999):  # a bad row in the first, second and last chunk
        bookings[index] = {**bookings[index], "age": "bad"}
    response = post_events(server, "events", ndjson(bookings), wait="true")
    assert response.json() == {"successful_rows": 11_997, "quarantined_rows": 3}
    assert server.count("events") == before + 11_997
    assert server.count("events_quarantine") == quarantined_before + 3
    ids = server.sql("SELECT DISTINCT c__import_id AS id FROM events_quarantine "
                     "WHERE age = 'bad'")["data"]
    assert len(ids) == 1


def test_chunked_body_over_the_limit_is_413_and_writes_nothing(server_factory, tmp_path):
    """No Content-Length to refuse up front: the limit holds while the body streams in."""
    limited = server_factory(data_dir=tmp_path / "limited",
                             env={"TB_LOCAL_MAX_EVENTS_BYTES": "100000"})
    body = ndjson(BookingGenerator(seed=9).bookings(1000))
    assert len(body) > 150_000

    def chunks():  # a generator body: requests sends it with Transfer-Encoding: chunked
        for start in range(0, 150_000, 10_000):
            yield body[start:start + 10_000]

    response = requests.post(f"{limited.url}/v0/events", params={"name": "events", "wait": "true"},
                             data=chunks(), headers=limited.admin_headers(), timeout=30)
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in response.request.headers
    assert response.status_code == 413
    assert "over 100000 bytes" in response.json()["error"]
    assert limited.count("events") == 0


def test_events_over_the_datasource_rate_are_429_with_retry_after(server_factory, tmp_path):
    limited = server_factory(data_dir=tmp_path / "limited", env={"TB_LOCAL_EVENTS_RPS": "2"})
    body = ndjson(BookingGenerator(seed=10).bookings(1))
    answers = [post_events(limited, "events", body, wait="true") for _ in range(6)]
    statuses = [a.status_code for a in answers]
    assert statuses[:2] == [200, 200]  # a burst of 2 is allowed
    refused = [a for a in answers if a.status_code == 429]
    assert refused, statuses
    assert int(refused[0].headers["Retry-After"]) >= 1
    assert refused[0].headers["X-RateLimit-Limit"] == "3"
    # A refused request writes nothing: only the accepted ones' rows are there.
    assert limited.count("events") == statuses.count(200)


def test_a_body_of_invalid_lines_is_quarantined_with_reasons(server):
    """Lines that are not objects are quarantined by the engine from the body's bytes,
    object lines by the Python checks: both keep the line and a reason, one import id."""
    before, quarantined_before = server.count("events"), server.count("events_quarantine")
    good = BookingGenerator(seed=13).booking()
    lines = [b"1", b"not json at all \\ with\ta tab", b"  [1, 2]", b'"text"', b"{broken",
             b"{broken}", b" {", b'{"age": 1} x', json.dumps({**good, "age": "old"}).encode(),
             b"", b"   ", b"nope\r"]
    body = b"\n".join(lines * 200) + b"\n" + json.dumps(good).encode() + b"\n"
    response = post_events(server, "events", body, wait="true")
    assert response.json() == {"successful_rows": 1, "quarantined_rows": 10 * 200}
    assert server.count("events") == before + 1
    assert server.count("events_quarantine") == quarantined_before + 10 * 200
    rows = server.sql(
        "SELECT age, c__error_column AS cols, c__error AS errors, c__import_id AS id, "
        "count() AS n FROM events_quarantine GROUP BY age, cols, errors, id")["data"]
    by_value = {r["age"]: r for r in rows if r["n"] == 200}
    assert by_value["1"]["errors"] == ["the event is not a JSON object"]
    assert by_value["[1, 2]"]["errors"] == ["the event is not a JSON object"]
    assert by_value["not json at all \\ with\ta tab"]["errors"] == ["invalid JSON"]
    assert by_value["nope"]["cols"] == ["__row__"]
    assert by_value["{broken"]["errors"] == ["invalid JSON"]
    assert by_value["{broken}"]["errors"] == ["invalid JSON"]
    assert by_value["{"]["errors"] == by_value['{"age": 1} x']["errors"] == ["invalid JSON"]
    assert "'old' on column 'age'" in by_value["old"]["errors"][0]
    assert len({by_value[v]["id"] for v in ("1", "{broken", "{broken}", "old")}) == 1


def test_the_engine_counts_rejected_lines_across_pieces_of_the_body(server):
    """Over a MiB of lines that are not objects spans two pieces of the body; the count
    the engine reports must be every line, the last one without a newline included."""
    quarantined_before = server.count("events_quarantine")
    body = b"1\n" * 300_000 + b"\r\n \n" + b"[2]\n" * 150_000 + b"3"
    assert len(body) > 1 << 20
    response = post_events(server, "events", body, wait="true")
    assert response.json() == {"successful_rows": 0, "quarantined_rows": 450_001}
    assert server.count("events_quarantine") == quarantined_before + 450_001


def test_a_piece_with_many_lines_that_are_not_json_loses_and_doubles_nothing(server):
    """After SIFT_AFTER broken lines the rest of a body (if it is SIFT_MIN_BYTES or
    more) is sifted by the engine first; every line must still be written or
    quarantined once, with the reason the Python checks give: a NaN (which only Python
    reads) is a bad value, not invalid JSON."""
    good = list(BookingGenerator(seed=17).bookings(60))
    nan_age = json.dumps({**good[0], "age": "AGE"}).replace('"AGE"', "NaN")
    assert "NaN" in nan_age
    cr_inside = '{"name": "a\rb\\u0041"}'  # a raw CR: not JSON, though it holds a \u
    lines = ([b"{x%d}" % i for i in range(SIFT_AFTER + 50)]
             + [json.dumps(b).encode() for b in good[1:]] + [nan_age.encode()] * 40
             + [cr_inside.encode()] * 7 + [b"{}"] * 20 + [b"{y}"] * 30)
    padding = [b"{pad %07d}" % i for i in range(SIFT_MIN_BYTES // 12)]
    lines += padding
    before, quarantined_before = server.count("events"), server.count("events_quarantine")
    response = post_events(server, "events", b"\n".join(lines), wait="true")
    broken = SIFT_AFTER + 50 + 7 + 30 + len(padding)
    assert response.json() == {"successful_rows": 59, "quarantined_rows": broken + 40 + 20}
    assert server.count("events") == before + 59
    assert server.count("events_quarantine") == quarantined_before + broken + 60
    reasons = {r["reason"]: int(r["n"]) for r in server.sql(
        "SELECT c__error[1] AS reason, count() AS n FROM events_quarantine WHERE "
        "c__import_id = (SELECT c__import_id FROM events_quarantine WHERE age = '{y}' "
        "LIMIT 1) GROUP BY reason")["data"]}
    assert reasons["invalid JSON"] == broken
    assert reasons["value 'NaN' on column 'age' is not an integer (Int16)"] == 40


def test_objects_that_lack_columns_are_quarantined_with_every_reason_in_order(server):
    """Tiny objects lacking most columns take a compact path to the quarantine; the rows
    must be those of the full checks: original values, reasons in column order."""
    columns = ["age", "airline", "email", "extra_bags", "flight_from", "flight_to",
               "meal_choice", "name", "passport_number", "priority_boarding", "timestamp",
               "transaction_id"]

    def missing(name):
        return f"missing value for column '{name}' (no '$.{name}' in the event and no DEFAULT)"

    def imports():
        return {r["id"] for r in server.sql(
            "SELECT DISTINCT c__import_id AS id FROM events_quarantine")["data"]}

    earlier = imports()
    body = b"\n".join([b'{"age":"x"}', b'{"name":5,"email":null,"zz":1}', b"{}"] * 100)
    response = post_events(server, "events", body, wait="true")
    assert response.json() == {"successful_rows": 0, "quarantined_rows": 300}
    [this] = imports() - earlier
    rows = server.sql(
        "SELECT age, name, email, c__error_column AS cols, c__error AS errors, count() AS n "
        f"FROM events_quarantine WHERE c__import_id = '{this}' "
        "GROUP BY age, name, email, cols, errors ORDER BY n")["data"]
    by_shape = {(r["age"], r["name"]): r for r in rows}
    assert all(r["n"] == 100 for r in rows) and len(rows) == 3
    assert by_shape[("x", None)]["cols"] == columns
    assert by_shape[("x", None)]["errors"] == (
        ["value 'x' on column 'age' is not an integer (Int16)"]
        + [missing(c) for c in columns[1:]])
    assert by_shape[(None, "5")]["cols"] == [c for c in columns if c != "name"]
    assert by_shape[(None, "5")]["errors"] == [
        "value null on column 'email' is not Nullable" if c == "email" else missing(c)
        for c in columns if c != "name"]
    assert by_shape[(None, None)]["errors"] == [missing(c) for c in columns]


def test_a_text_with_half_a_utf16_pair_is_kept_not_a_server_error(server):
    """`"\\ud800"` is not valid Unicode, but Python reads it: the row lands (or is
    quarantined) with U+FFFD in its place, whatever follows it, and the request is not
    refused whole."""
    booking = {**BookingGenerator(seed=23).booking(), "airline": "HalfPairAir"}
    good = json.dumps(booking).replace("HalfPairAir", "HalfPairAir\\ud800\\\\")
    assert "\\ud800" in good
    bad = (b'{"name": "\\ud800 lost", "age": "x"}\n{"name": "low \\udc00\\ud800"}\n'
           b'{"name": "\\ud800\\\\ cut"}')
    before, quarantined_before = server.count("events"), server.count("events_quarantine")
    response = post_events(server, "events", good.encode() + b"\n" + bad, wait="true")
    assert response.status_code == 200, response.text
    assert response.json() == {"successful_rows": 1, "quarantined_rows": 3}
    assert server.count("events") == before + 1
    assert server.count("events_quarantine") == quarantined_before + 3
    [row] = server.sql("SELECT airline FROM events WHERE startsWith(airline, 'HalfPairAir')")[
        "data"]
    assert row["airline"] == "HalfPairAir\ufffd\\"
    names = {r["name"] for r in server.sql(
        "SELECT name FROM events_quarantine WHERE name LIKE '%lost' OR name LIKE 'low %' "
        "OR name LIKE '% cut'")["data"]}
    assert names == {"\ufffd lost", "low \ufffd\ufffd", "\ufffd\\ cut"}


def test_a_text_of_thousands_of_digits_is_a_value_not_a_server_error(server):
    """int() refuses texts of over 4300 digits: such a text in an integer column is out
    of range, or its number if the rest are leading zeros, and the request succeeds."""
    generator = BookingGenerator(seed=29)
    zeros = {**generator.booking(), "airline": "LongDigitsAir", "age": "0" * 5000 + "42"}
    nines = {**generator.booking(), "airline": "LongDigitsAir", "age": "9" * 5000}
    before = server.count("events")
    response = post_events(server, "events", f"{json.dumps(zeros)}\n{json.dumps(nines)}".encode(),
                           wait="true")
    assert response.status_code == 200, response.text
    assert response.json() == {"successful_rows": 1, "quarantined_rows": 1}
    assert server.count("events") == before + 1
    [row] = server.sql("SELECT age FROM events WHERE airline = 'LongDigitsAir'")["data"]
    assert row["age"] == 42
    [error] = server.sql("SELECT c__error FROM events_quarantine "
                         "WHERE airline = 'LongDigitsAir'")["data"]
    assert error["c__error"] == [f"value '{'9' * 200}' on column 'age' is out of range "
                                 "[-32768, 32767] (Int16)"]
