"""tinybird.pipe_stats_rt and tinybird.datasources_ops_log, read through /v0/sql."""

from __future__ import annotations

import json
import signal

import requests

from lib.bookings.generator import BookingGenerator

SERVER_SEED_ROWS, SERVER_SEED = 500, 13

PIPE_STATS_COLUMNS = {"start_datetime", "pipe_id", "pipe_name", "duration", "read_bytes",
                      "read_rows", "result_rows", "url", "error", "request_id", "token",
                      "token_name", "status_code", "method", "parameters"}
OPS_LOG_COLUMNS = {"timestamp", "event_type", "datasource_id", "datasource_name", "result",
                   "elapsed_time", "error", "import_id", "job_id", "request_id", "rows",
                   "rows_quarantine", "read_rows", "read_bytes", "written_rows"}


def columns(server, table):
    return {m["name"] for m in server.sql(f"SELECT * FROM {table} LIMIT 0")["meta"]}


def test_documented_columns(server):
    assert columns(server, "tinybird.pipe_stats_rt") >= PIPE_STATS_COLUMNS
    assert columns(server, "tinybird.datasources_ops_log") >= OPS_LOG_COLUMNS


def test_every_endpoint_request_is_a_row_without_the_token(server):
    token = server.jwt(name="stats_probe", fixed_params={"meal_choice": "vegan"})
    ok = requests.get(f"{server.url}/v0/pipes/top_airlines.json",
                      params={"token": token, "date_from": "2000-01-01 00:00:00"}, timeout=30)
    assert ok.status_code == 200
    bad = requests.get(f"{server.url}/v0/pipes/top_airlines.json",
                       params={"token": token, "date_from": "not a date"}, timeout=30)
    assert bad.status_code == 400
    rows = server.sql("SELECT * FROM tinybird.pipe_stats_rt WHERE token_name = 'stats_probe' "
                      "ORDER BY status_code")["data"]
    assert [r["status_code"] for r in rows] == [200, 400]
    good, failed = rows
    assert good["pipe_name"] == "top_airlines"
    assert good["pipe_id"] == server.workspace.pipe_id("top_airlines")
    assert good["error"] == 0 and failed["error"] == 1
    assert good["result_rows"] == len(ok.json()["data"])
    assert good["request_id"] == ok.headers["X-Request-ID"]
    assert good["method"] == "GET" and good["duration"] > 0
    assert good["parameters"] == {"date_from": "2000-01-01 00:00:00"}
    for row in rows:
        assert token not in json.dumps(row)
        assert "token" not in row["parameters"]
        assert row["url"].startswith("/v0/pipes/top_airlines.json?date_from=")


def test_events_api_appends_are_logged(server):
    good = json.dumps(BookingGenerator(seed=21).booking())
    body = f"{good}\n{good}\nnot json\n"
    response = requests.post(f"{server.url}/v0/events", params={"name": "events", "wait": "true"},
                             data=body, headers=server.admin_headers(), timeout=30)
    assert response.json() == {"successful_rows": 2, "quarantined_rows": 1}
    broken = requests.post(f"{server.url}/v0/events", params={"name": "events"},
                            data=b"\x1f\x8bgarbage", headers=server.admin_headers(), timeout=30)
    assert broken.status_code == 400
    rows = server.sql("SELECT * FROM tinybird.datasources_ops_log "
                      "WHERE event_type = 'append-hfi' ORDER BY timestamp, result")["data"]
    ok = [r for r in rows if r["result"] == "ok"]
    failed = [r for r in rows if r["result"] == "error"]
    assert ok[-1]["rows"] == 2 and ok[-1]["rows_quarantine"] == 1
    assert ok[-1]["datasource_name"] == "events" and ok[-1]["datasource_id"].startswith("t_")
    assert ok[-1]["request_id"] == response.headers["X-Request-ID"]
    assert failed and "gzip" in failed[-1]["error"]


def test_only_the_admin_token_reads_them_and_system_stays_closed(server):
    static = server.workspace.tokens["top_airlines_read_static"].token
    for table in ("tinybird.pipe_stats_rt", "tinybird.datasources_ops_log"):
        response = requests.get(f"{server.url}/v0/sql",
                                params={"q": f"SELECT count() FROM {table}", "token": static},
                                timeout=30)
        assert response.status_code == 403
        assert "ADMIN" in response.json()["error"]
    for q in ["SELECT * FROM system.tables", "SELECT * FROM tinybird.other",
              "SELECT * FROM system.query_log"]:
        response = requests.get(f"{server.url}/v0/sql", params={"q": q},
                                headers=server.admin_headers(), timeout=30)
        assert response.status_code == 400, (q, response.text)


def test_rows_written_before_a_clean_stop_are_kept(server_factory, tmp_path):
    first = server_factory(data_dir=tmp_path / "data")
    for _ in range(3):
        requests.get(f"{first.url}/v0/pipes/top_airlines.json", params={"token": first.jwt()},
                     timeout=30)
    assert first.stop(signal.SIGTERM) == 0
    second = server_factory(data_dir=tmp_path / "data")
    rows = second.sql("SELECT count() AS n FROM tinybird.pipe_stats_rt")["data"]
    assert rows[0]["n"] == 3
