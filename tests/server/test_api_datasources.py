"""The workspace, listing and Data Sources API routes Tinybird's CLIs and SDKs call.

A real server; the shapes are those the clients read (see api_datasources.py and
api_workspace.py for the requests each client sends).
"""

from __future__ import annotations

import gzip
import json

import pytest
import requests

from lib.tinybird_local.batches import SIFT_MIN_BYTES

SERVER_SEED_ROWS, SERVER_SEED = 500, 11

COLUMNS = ["age", "airline", "email", "extra_bags", "flight_from", "flight_to", "meal_choice",
           "name", "passport_number", "priority_boarding", "timestamp", "transaction_id"]


def booking(i: int, airline: str = "LocalAir") -> dict:
    return {"age": 30 + i % 40, "airline": airline, "email": f"p{i}@example.com",
            "extra_bags": i % 3, "flight_from": "MAD", "flight_to": "LHR",
            "meal_choice": "vegan", "name": f"P {i}", "passport_number": 1000 + i,
            "priority_boarding": i % 2, "timestamp": "2024-06-01T12:00:00.000Z",
            "transaction_id": f"{airline}-{i}"}


def ndjson(rows: list[dict]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def csv_text(rows: list[dict], header: bool = True) -> bytes:
    lines = [",".join(COLUMNS)] if header else []
    lines += [",".join(str(r[c]) for c in COLUMNS) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def post(server, params: dict, **kwargs) -> requests.Response:
    return requests.post(f"{server.url}/v0/datasources", params=params,
                         headers=kwargs.pop("headers", server.admin_headers()), timeout=60,
                         **kwargs)


def airline_count(server, airline: str, table: str = "events") -> int:
    return server.count(f"{table} WHERE airline = '{airline}'")


def totals(server, airline: str) -> int:
    rows = server.sql(f"SELECT sum(bookings) AS n FROM airline_bookings_totals "
                      f"WHERE airline = '{airline}'")["data"]
    return int(rows[0]["n"]) if rows else 0


def assert_error(response: requests.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "documentation"}
    assert words in body["error"], body["error"]


# -- workspace ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/v0/workspace", "/v1/workspace"])
def test_workspace_answers_the_admin_token_with_id_name_and_admin_scope(server, path):
    response = requests.get(f"{server.url}{path}", params={"token": server.admin_token,
                                                           "cli_version": "6.5.5"}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == server.workspace.workspace_id
    assert body["name"] == server.workspace.name
    assert body["scope"] == "admin"


def test_workspace_with_a_read_token_has_no_admin_scope_and_a_bad_token_is_403(server):
    static = server.workspace.tokens["top_airlines_read_static"].token
    body = requests.get(f"{server.url}/v0/workspace", params={"token": static},
                        timeout=30).json()
    assert body["id"] == server.workspace.workspace_id and "scope" not in body
    response = requests.get(f"{server.url}/v0/workspace", params={"token": "p.nope"},
                            timeout=30)
    assert_error(response, 403, "invalid authentication token")


def test_regions_name_this_server(server):
    regions = requests.get(f"{server.url}/v0/regions", timeout=30).json()["regions"]
    assert [r["api_host"] for r in regions] == [server.url]


# -- listings and info -------------------------------------------------------------------
def test_datasource_listing_and_info_have_the_documented_fields(server):
    listing = requests.get(f"{server.url}/v0/datasources", headers=server.admin_headers(),
                           timeout=30).json()["datasources"]
    events = next(d for d in listing if d["name"] == "events")
    for key in ("id", "name", "created_at", "updated_at", "type", "engine", "schema",
                "columns", "statistics"):
        assert key in events, key
    assert events["id"].startswith("t_")
    # `tb datasource ls` cuts 7 characters (".ffffff") off both dates.
    assert len(events["created_at"]) == len("2025-12-17 13:18:09.799040")
    assert [c["name"] for c in events["schema"]["columns"]] == COLUMNS
    assert events["schema"]["columns"][0]["jsonpath"] == "$.age"
    assert events["engine"]["engine"] == "MergeTree"
    assert events["statistics"]["row_count"] == SERVER_SEED_ROWS
    by_name = requests.get(f"{server.url}/v0/datasources/events",
                           headers=server.admin_headers(), timeout=30).json()
    by_id = requests.get(f"{server.url}/v0/datasources/{events['id']}",
                         headers=server.admin_headers(), timeout=30).json()
    assert by_name["id"] == by_id["id"] == events["id"]
    assert by_name["statistics"]["row_count"] >= SERVER_SEED_ROWS


def test_unknown_datasource_is_404_and_a_read_token_is_403(server):
    response = requests.get(f"{server.url}/v0/datasources/no_such",
                            headers=server.admin_headers(), timeout=30)
    assert_error(response, 404, "'no_such' not found")
    static = server.workspace.tokens["top_airlines_read_static"].token
    response = requests.get(f"{server.url}/v0/datasources/events", params={"token": static},
                            timeout=30)
    assert_error(response, 403, "doesn't have access")


def test_ids_and_dates_survive_a_restart(server_factory, tmp_path):
    first = server_factory()
    before = requests.get(f"{first.url}/v0/pipes/top_airlines", headers=first.admin_headers(),
                          timeout=30).json()
    ds_before = requests.get(f"{first.url}/v0/datasources/events",
                             headers=first.admin_headers(), timeout=30).json()
    first.stop()
    again = server_factory(project_dir=first.project_dir, data_dir=first.data_dir)
    after = requests.get(f"{again.url}/v0/pipes/top_airlines", headers=again.admin_headers(),
                         timeout=30).json()
    ds_after = requests.get(f"{again.url}/v0/datasources/events",
                            headers=again.admin_headers(), timeout=30).json()
    assert (after["id"], after["created_at"]) == (before["id"], before["created_at"])
    assert (ds_after["id"], ds_after["created_at"]) == (ds_before["id"], ds_before["created_at"])


def test_pipe_info_has_nodes_with_ids_sql_and_params(server):
    pipe = requests.get(f"{server.url}/v0/pipes/top_airlines", headers=server.admin_headers(),
                        timeout=30).json()
    assert pipe["name"] == "top_airlines" and pipe["type"] == "endpoint"
    assert pipe["id"].startswith("t_") and pipe["created_at"] and pipe["updated_at"]
    node = pipe["nodes"][-1]
    assert pipe["endpoint"] == node["id"] and node["name"] == "endpoint"
    assert "airline_bookings_totals" in node["sql"]
    assert {p["name"] for p in node["params"]} == {"date_from", "date_to", "meal_choice"}
    assert pipe["url"] == "/v0/pipes/top_airlines.json"
    by_id = requests.get(f"{server.url}/v0/pipes/{pipe['id']}", headers=server.admin_headers(),
                         timeout=30).json()
    assert by_id["name"] == "top_airlines"
    # The extension still means the endpoint's data.
    data = requests.get(f"{server.url}/v0/pipes/top_airlines.json",
                        headers=server.admin_headers(), timeout=30).json()
    assert "data" in data
    listing = requests.get(f"{server.url}/v0/pipes", headers=server.admin_headers(),
                           timeout=30).json()["pipes"]
    mv = next(p for p in listing if p["name"] == "airline_bookings_totals_mv")
    assert mv["type"] == "materialized" and mv["endpoint"] is None
    assert all(p["created_at"] and p["updated_at"] for p in listing)


def test_unknown_pipe_info_is_404_and_needs_the_admin_token(server):
    response = requests.get(f"{server.url}/v0/pipes/no_such_pipe",
                            headers=server.admin_headers(), timeout=30)
    assert_error(response, 404, "'no_such_pipe' not found")
    response = requests.get(f"{server.url}/v0/pipes/top_airlines",
                            params={"token": server.jwt()}, timeout=30)
    assert response.status_code == 403


# -- append, replace, truncate, create ---------------------------------------------------
def test_append_multipart_ndjson_as_the_classic_cli_sends_it(server):
    rows = [booking(i, "NdAir") for i in range(5)] + [{"airline": "NdAir", "age": "old"}]
    response = post(server, {"name": "events", "mode": "append", "format": "ndjson",
                             "debug": "blocks_block_log"},
                    files={"ndjson": ("ndjson", ndjson(rows))})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["datasource"]["name"] == "events" and body["import_id"]
    assert body["quarantine_rows"] == 1 and body["invalid_lines"] == 0
    assert body["error"] is False
    assert body["blocks"][0]["process_return"][0]["lines"] == 5
    assert airline_count(server, "NdAir") == 5
    assert airline_count(server, "NdAir", "events_quarantine") == 1
    # The materialized totals follow, as for the Events API.
    assert totals(server, "NdAir") == 5


def test_append_ndjson_with_many_lines_that_are_not_json_counts_each_once(server):
    """Past SIFT_AFTER broken lines the engine sifts the rest of the file (it is over
    SIFT_MIN_BYTES), as for the Events API: good rows land, every other line is
    quarantined once."""
    good = ndjson([booking(i, "SiftAir") for i in range(30)])
    lines = SIFT_MIN_BYTES // 16
    broken = b"".join(b"{not json %06d}\n" % i for i in range(lines))
    before = server.count("events_quarantine")
    response = post(server, {"name": "events", "mode": "append", "format": "ndjson"},
                    files={"ndjson": ("ndjson", broken + good + broken)})
    assert response.status_code == 200, response.text
    assert response.json()["quarantine_rows"] == 2 * lines
    assert airline_count(server, "SiftAir") == 30
    assert server.count("events_quarantine") == before + 2 * lines


def test_append_csv_with_and_without_header_and_a_bad_row(server):
    rows = [booking(i, "CsvAir") for i in range(3)]
    response = post(server, {"name": "events", "mode": "append"},
                    files={"csv": ("csv", csv_text(rows))})
    assert response.status_code == 200, response.text
    assert response.json()["quarantine_rows"] == 0
    # A short row (missing columns: quarantined), a good one, one with too many fields.
    bad = b"39,CsvAir,not,enough\n" + csv_text([booking(7, "CsvAir")], header=False)
    bad += b"1,2,3,4,5,6,7,8,9,10,11,12,13\n"
    response = post(server, {"name": "events", "mode": "append", "format": "csv"},
                    files={"csv": ("csv", bad)})
    body = response.json()
    assert body["quarantine_rows"] == 2 and body["invalid_lines"] == 1, body
    assert airline_count(server, "CsvAir") == 4
    assert totals(server, "CsvAir") == 4


def test_append_raw_body_as_verdin_sends_it_gzip_too(server):
    rows = [booking(i, "RawAir") for i in range(4)]
    response = post(server, {"name": "events", "mode": "append", "format": "ndjson"},
                    data=ndjson(rows[:2]),
                    headers={**server.admin_headers(),
                             "Content-Type": "application/x-ndjson; charset=utf-8"})
    assert response.status_code == 200, response.text
    semicolons = csv_text(rows[2:], header=False).replace(b",", b";")
    response = post(server, {"name": "events", "mode": "append", "format": "csv",
                             "dialect_delimiter": ";"}, data=gzip.compress(semicolons),
                    headers={**server.admin_headers(), "Content-Type": "text/html"})
    assert response.status_code == 200, response.text
    assert airline_count(server, "RawAir") == 4


def test_append_needs_append_rights_and_an_existing_datasource(server):
    static = server.workspace.tokens["top_airlines_read_static"].token
    response = post(server, {"name": "events", "mode": "append", "token": static},
                    headers={}, files={"csv": ("csv", b"1\n")})
    assert_error(response, 403, "lacks APPEND on Data Source 'events'")
    response = post(server, {"name": "nope", "mode": "append"},
                    files={"csv": ("csv", b"1\n")})
    assert_error(response, 404, "'nope' not found")
    response = post(server, {"name": "events", "mode": "append"})
    assert_error(response, 400, "No data to import")


def test_refusals_name_the_problem(server):
    response = post(server, {"name": "events", "mode": "append",
                             "url": "https://example.com/f.csv"})
    assert_error(response, 400, "Importing from a URL is not supported")
    response = post(server, {"name": "events", "mode": "upsert"},
                    files={"csv": ("csv", b"1\n")})
    assert_error(response, 400, "Invalid mode 'upsert'")
    response = post(server, {"name": "events", "mode": "append", "format": "avro"},
                    files={"avro": ("avro", b"Obj1")})
    assert_error(response, 400, "Format 'avro' is not supported")
    response = post(server, {"name": "fresh_one", "mode": "create"})
    assert_error(response, 400, "'schema' parameter is required")
    response = post(server, {"name": "fresh_two", "schema": "`a` NoSuchType(", "mode": "create"})
    assert_error(response, 400, "Invalid schema")
    response = post(server, {"name": "events", "schema": "`a` String"})
    assert_error(response, 400, "already exists")


def test_create_from_schema_then_append_query_and_survive_a_restart(server_factory):
    first = server_factory()
    response = post(first, {"name": "clicks", "mode": "create",
                            "schema": "`ts` DateTime `json:$.ts`, `url` String `json:$.url`",
                            "engine_sorting_key": "ts"})
    assert response.status_code == 200, response.text
    assert response.json()["datasource"]["name"] == "clicks"
    lines = b'{"ts":"2024-06-01 12:00:00","url":"/a"}\n{"ts":"nope","url":"/b"}\n'
    body = post(first, {"name": "clicks", "mode": "append", "format": "ndjson"},
                files={"ndjson": ("clicks.ndjson", lines)}).json()
    assert body["quarantine_rows"] == 1
    assert first.count("clicks") == 1 and first.count("clicks_quarantine") == 1
    first.stop()
    again = server_factory(project_dir=first.project_dir, data_dir=first.data_dir)
    names = [d["name"] for d in requests.get(f"{again.url}/v0/datasources",
                                             headers=again.admin_headers(),
                                             timeout=30).json()["datasources"]]
    assert "clicks" in names
    assert again.count("clicks") == 1


def test_replace_swaps_the_rows_and_rebuilds_the_materialized_totals(server_factory):
    running = server_factory()
    running.seed(300, 5)
    rows = [booking(i, "OnlyAir") for i in range(7)]
    response = post(running, {"name": "events", "mode": "replace", "format": "ndjson"},
                    files={"ndjson": ("ndjson", ndjson(rows))})
    assert response.status_code == 200, response.text
    assert running.count("events") == 7
    listing = running.sql("SELECT airline, sum(bookings) AS n FROM airline_bookings_totals "
                          "GROUP BY airline")["data"]
    assert [(r["airline"], int(r["n"])) for r in listing] == [("OnlyAir", 7)]
    buckets = running.sql("SELECT sum(bookings) AS n FROM airline_meal_buckets "
                          "WHERE seconds = 3600")["data"]
    assert int(buckets[0]["n"]) == 7
    top = requests.get(f"{running.url}/v0/pipes/top_airlines.json",
                       headers=running.admin_headers(), timeout=30).json()["data"]
    assert top == [{"airline": "OnlyAir", "bookings": 7}]
    # Nothing of the staging table is left behind for a client to see.
    response = requests.get(f"{running.url}/v0/sql", headers=running.admin_headers(),
                            params={"q": "SELECT name FROM system.tables"}, timeout=30)
    assert "_replace_" not in response.text


def test_truncate_empties_the_datasource(server_factory):
    running = server_factory()
    running.seed(50, 3)
    response = requests.post(f"{running.url}/v0/datasources/events/truncate",
                             headers=running.admin_headers(), timeout=30)
    assert response.status_code == 200, response.text
    assert running.count("events") == 0
    response = requests.post(f"{running.url}/v0/datasources/no_such/truncate",
                             headers=running.admin_headers(), timeout=30)
    assert_error(response, 404, "'no_such' not found")
