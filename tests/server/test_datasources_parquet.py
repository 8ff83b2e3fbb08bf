"""Parquet files in the Data Sources API, and replaces with a `replace_condition`.

The Parquet files are written by the server's own engine (`/v0/sql ... FORMAT Parquet`),
so the test process needs no Parquet library and opens no engine of its own.
"""

from __future__ import annotations

import gzip

import pytest
import requests

from tests.server.test_api_datasources import airline_count, assert_error, post, totals
from tests.support.clients import client_venv, run

SERVER_SEED_ROWS, SERVER_SEED = 300, 4
QUIET = {"TB_CLI_TELEMETRY_OPTOUT": "1", "TB_VERSION_WARNING": "0"}


def bookings_sql(airline: str, rows: int, age: str = "toInt16(30 + number % 40)") -> str:
    """A SELECT of `rows` bookings with the columns of `events`, named as its columns."""
    return (f"SELECT {age} AS age, '{airline}' AS airline, "
            "concat('p', toString(number), '@example.com') AS email, "
            "toInt16(number % 3) AS extra_bags, 'MAD' AS flight_from, 'LHR' AS flight_to, "
            "'vegan' AS meal_choice, concat('P ', toString(number)) AS name, "
            "toInt32(1000 + number) AS passport_number, toUInt8(number % 2) AS "
            "priority_boarding, toDateTime64('2024-06-01 12:00:00', 3, 'UTC') AS timestamp, "
            f"concat('{airline}-', toString(number)) AS transaction_id FROM numbers({rows})")


def parquet(server, select: str) -> bytes:
    response = requests.get(f"{server.url}/v0/sql", params={"q": f"{select} FORMAT Parquet"},
                            headers=server.admin_headers(), timeout=30)
    assert response.status_code == 200, response.text
    assert response.content[:4] == b"PAR1"
    return response.content


def send(server, params: dict, data: bytes, name: str = "bookings.parquet"):
    return post(server, {"format": "parquet", **params}, files={"parquet": (name, data)})


def quarantined(server, airline: str) -> int:
    return server.count(f"events_quarantine WHERE airline = '{airline}'")


# -- Parquet -----------------------------------------------------------------------------
def test_append_parquet_writes_rows_and_the_materialized_totals_follow(server):
    response = send(server, {"name": "events", "mode": "append"},
                    parquet(server, bookings_sql("PqAir", 25)))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["blocks"][0]["process_return"][0]["lines"] == 25
    assert body["quarantine_rows"] == 0
    assert airline_count(server, "PqAir") == 25
    assert totals(server, "PqAir") == 25


def test_parquet_rows_that_do_not_fit_go_to_quarantine(server):
    age = "if(number = 0, 'old', toString(30 + number))"
    response = send(server, {"name": "events", "mode": "append"},
                    parquet(server, bookings_sql("PqBadAir", 4, age=age)))
    assert response.status_code == 200, response.text
    assert response.json()["quarantine_rows"] == 1
    assert airline_count(server, "PqBadAir") == 3
    assert quarantined(server, "PqBadAir") == 1


def test_gzipped_parquet_as_a_raw_body_as_the_forward_cli_sends_it(server):
    data = gzip.compress(parquet(server, bookings_sql("PqGzAir", 5)))
    response = requests.post(f"{server.url}/v1/datasources/events/append",
                             params={"format": "parquet"}, data=data, timeout=60,
                             headers={**server.admin_headers(),
                                      "Content-Type": "application/vnd.apache.parquet",
                                      "Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert airline_count(server, "PqGzAir") == 5


def test_a_file_that_is_not_parquet_is_a_400_and_writes_nothing(server):
    before = server.count("events"), server.count("events_quarantine")
    response = send(server, {"name": "events", "mode": "append"}, b"PAR1 not really\n")
    assert_error(response, 400, "The Parquet file could not be read")
    assert "Not a Parquet file" in response.json()["error"]
    assert "uploads" not in response.json()["error"]
    truncated = parquet(server, bookings_sql("PqCutAir", 50))[:-40]
    assert_error(send(server, {"name": "events", "mode": "append"}, truncated), 400,
                 "The Parquet file could not be read")
    assert (server.count("events"), server.count("events_quarantine")) == before
    # A create with a bad file creates nothing either.
    response = send(server, {"name": "pq_never", "mode": "create", "schema": "`n` UInt64"},
                    b"not parquet")
    assert_error(response, 400, "The Parquet file could not be read")
    listed = requests.get(f"{server.url}/v0/datasources/pq_never",
                          headers=server.admin_headers(), timeout=30)
    assert listed.status_code == 404
    assert not list((server.data_dir / "uploads").glob("*"))


def test_create_from_a_schema_and_a_parquet_file(server):
    data = parquet(server, "SELECT number AS n, toString(number * 2) AS label "
                           "FROM numbers(7)")
    response = send(server, {"name": "pq_numbers", "mode": "create",
                             "schema": "`n` UInt64, `label` String",
                             "engine_sorting_key": "n"}, data)
    assert response.status_code == 200, response.text
    assert server.count("pq_numbers") == 7
    assert server.sql("SELECT label FROM pq_numbers WHERE n = 3")["data"] == [{"label": "6"}]


def test_replace_with_parquet_swaps_every_row(server_factory):
    running = server_factory()
    running.seed(200, 2)
    response = send(running, {"name": "events", "mode": "replace"},
                    parquet(running, bookings_sql("PqOnlyAir", 9)))
    assert response.status_code == 200, response.text
    assert running.count("events") == 9
    assert totals(running, "PqOnlyAir") == 9


@pytest.mark.clients
def test_forward_tb_datasource_append_a_parquet_file(server, tmp_path):
    path = tmp_path / "more.parquet"
    path.write_bytes(parquet(server, bookings_sql("PqCliAir", 6)))
    env = client_venv("tinybird")
    result = run(env, ["tb", "--cloud", "--host", server.url, "--token", server.admin_token,
                       "datasource", "append", "events", str(path)],
                 cwd=tmp_path, extra_env=QUIET, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert airline_count(server, "PqCliAir") == 6


# -- replace_condition ---------------------------------------------------------------------
@pytest.fixture
def two_airlines(server_factory):
    """A server whose `events` holds 10 rows of KeepAir and 6 of SwapAir."""
    running = server_factory()
    for airline, rows in (("KeepAir", 10), ("SwapAir", 6)):
        response = send(running, {"name": "events", "mode": "append"},
                        parquet(running, bookings_sql(airline, rows)))
        assert response.status_code == 200, response.text
    return running


def state_of_events(server) -> list[tuple[str, int, int]]:
    rows = server.sql("SELECT airline, count() AS n, max(passport_number) AS top FROM events "
                      "GROUP BY airline ORDER BY airline")["data"]
    return [(r["airline"], int(r["n"]), int(r["top"])) for r in rows]


def test_replace_condition_replaces_only_the_matching_rows(two_airlines):
    running = two_airlines
    # The new file: 3 SwapAir rows (they replace the 6) and 4 KeepAir rows (dropped:
    # they do not match the condition).
    select = f"{bookings_sql('SwapAir', 3)} UNION ALL {bookings_sql('KeepAir', 4)}"
    data = parquet(running, f"SELECT * FROM ({select})")
    response = send(running, {"name": "events", "mode": "replace",
                              "replace_condition": "airline = 'SwapAir'"}, data)
    assert response.status_code == 200, response.text
    assert state_of_events(running) == [("KeepAir", 10, 1009), ("SwapAir", 3, 1002)]
    assert totals(running, "SwapAir") == 3 and totals(running, "KeepAir") == 10


def test_replace_condition_through_the_v1_route_with_csv(two_airlines):
    running = two_airlines
    csv_body = ("airline,age,email,extra_bags,flight_from,flight_to,meal_choice,name,"
                "passport_number,priority_boarding,timestamp,transaction_id\n"
                "SwapAir,40,a@b,0,MAD,LHR,none,A,5000,0,2024-06-01 12:00:00,s-1\n")
    response = requests.post(f"{running.url}/v1/datasources/events/replace",
                             params={"format": "csv",
                                     "replace_condition": "airline = 'SwapAir'"},
                             data=csv_body.encode(), timeout=60,
                             headers={**running.admin_headers(), "Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    assert state_of_events(running) == [("KeepAir", 10, 1009), ("SwapAir", 1, 5000)]


@pytest.mark.parametrize("condition, words", [
    ("airline IN (SELECT airline FROM airline_bookings_totals)", "no subquery or other table"),
    ("1), 0) UNION ALL SELECT * FROM events WHERE ifNull((1", "no subquery or other table"),
    ("name IN (SELECT name FROM system.tables)", "not found"),
    ("length(file('/etc/passwd')) > 0", "disabled"),
    ("1) SETTINGS max_execution_time = 0 --", "[Error]"),
    ("1; DROP TABLE events", "Syntax error"),
    ("no_such_column = 1", "no_such_column"),
])
def test_a_replace_condition_that_is_not_a_plain_condition_is_refused(two_airlines, condition,
                                                                      words):
    running = two_airlines
    before = state_of_events(running), running.count("events_quarantine")
    response = send(running, {"name": "events", "mode": "replace",
                              "replace_condition": condition},
                    parquet(running, bookings_sql("SwapAir", 2)))
    assert_error(response, 400, "Invalid replace_condition")
    assert words in response.json()["error"]
    assert (state_of_events(running), running.count("events_quarantine")) == before


def test_replace_condition_only_with_mode_replace(server):
    response = send(server, {"name": "events", "mode": "append",
                             "replace_condition": "airline = 'X'"},
                    parquet(server, bookings_sql("NeverAir", 1)))
    assert_error(response, 400, "replace_condition applies to mode=replace only")
    assert airline_count(server, "NeverAir") == 0


@pytest.mark.clients
def test_forward_tb_datasource_replace_with_a_sql_condition(two_airlines, tmp_path):
    running = two_airlines
    path = tmp_path / "swap.parquet"
    path.write_bytes(parquet(running, bookings_sql("SwapAir", 2)))
    env = client_venv("tinybird")
    result = run(env, ["tb", "--cloud", "--host", running.url, "--token",
                       running.admin_token, "datasource", "replace", "events", str(path),
                       "--sql-condition", "airline = 'SwapAir'"],
                 cwd=tmp_path, extra_env=QUIET, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert state_of_events(running) == [("KeepAir", 10, 1009), ("SwapAir", 2, 1001)]
