"""SQL from outside runs only as one SELECT over the workspace's own data.

Everything here goes through a real server and its engine: the Query API with the admin
token, pipe endpoints whose template picks a hostile branch at request time, and a
datafile whose node breaks the rules (start-up stops).
"""

from __future__ import annotations

import pytest
import requests

from tests.server.test_local_cli import cli
from tests.support.servers import make_project

SERVER_SEED_ROWS = 500
SERVER_FILES = {
    # Passes start-up (the branch is not taken without `evil`); a request that sets it
    # must still be refused.
    "pipes/two_faced.pipe": (
        "NODE endpoint\nSQL >\n    %\n    SELECT count() AS n FROM\n"
        "    {% if defined(evil) %} file('/etc/passwd', 'LineAsString') {% else %} events"
        " {% end %}\n\nTYPE endpoint\n"),
}

NOT_SELECT = "Only SELECT or DESCRIBE queries are supported. Got: "


def sql(server, q: str) -> requests.Response:
    return requests.get(f"{server.url}/v0/sql", params={"q": q},
                        headers=server.admin_headers(), timeout=30)


@pytest.mark.parametrize("q,reason", [
    ("DROP TABLE events", NOT_SELECT + "DropQuery"),
    ("TRUNCATE TABLE events", NOT_SELECT + "TruncateQuery"),
    ("INSERT INTO events (airline) VALUES ('x')", NOT_SELECT + "InsertQuery"),
    ("ALTER TABLE events DELETE WHERE 1", NOT_SELECT + "AlterQuery"),
    ("CREATE TABLE t (a Int8) ENGINE = Memory", NOT_SELECT + "CreateQuery"),
    ("SHOW TABLES", NOT_SELECT + "ShowTables"),
    ("SELECT 1; DROP TABLE events", "Multi-statements are not allowed"),
    ("SELECT 1;\nTRUNCATE TABLE events;", "Multi-statements are not allowed"),
    ("SELECT * FROM file('/etc/passwd', 'LineAsString')",
     "The query uses disabled table functions: 'file'"),
    ("SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')",
     "The query uses disabled table functions: 'url'"),
    ("SELECT * FROM s3('http://127.0.0.1:1/b/k', 'CSV')",
     "The query uses disabled table functions: 's3'"),
    ("SELECT * FROM remote('127.0.0.1:9000', system.one)",
     "The query uses disabled table functions: 'remote'"),
    ("SELECT * FROM executable('id', 'TSV', 'x String')",
     "The query uses disabled table functions: 'executable'"),
    ("SELECT * FROM merge('system', '.*')", "The query uses disabled table functions: 'merge'"),
    ("SELECT n FROM (SELECT count() AS n FROM file('/etc/passwd', 'LineAsString'))",
     "The query uses disabled table functions: 'file'"),
    ("SELECT file('/etc/passwd')", "The query uses disabled functions: 'file'"),
    ("SELECT * FROM system.tables", "Resource 'system.tables' not found"),
    ("SELECT * FROM `system`.`tables`", "Resource 'system.tables' not found"),
    ("SELECT 1 IN system.one", "Resource 'system.one' not found"),
    ("SELECT * FROM INFORMATION_SCHEMA.TABLES", "Resource 'INFORMATION_SCHEMA.TABLES' not found"),
    ("SELECT * FROM _tb_local_backfills", "Resource '_tb_local_backfills' not found"),
    ("SELECT count() FROM events SETTINGS max_execution_time = 0",
     "Usage of setting 'max_execution_time' is restricted"),
    ("SELECT count() FROM events SETTINGS readonly = 0", "Usage of setting 'readonly'"),
    ("SELECT count() FROM events SETTINGS max_memory_usage = 0 FORMAT JSON",
     "Usage of setting 'max_memory_usage'"),
    ("SELECT count() FROM (SELECT * FROM events SETTINGS allow_ddl = 1)",
     "Usage of setting 'allow_ddl'"),
    ("SELECT 1 AS `x\n      Function url`", "identifiers and aliases may not contain line breaks"),
])
def test_hostile_sql_is_refused_and_changes_nothing(server, q, reason):
    before = server.count("events")
    response = sql(server, q)
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"error", "documentation"}
    assert reason in body["error"]
    assert "root:" not in response.text  # nothing of /etc/passwd
    assert server.count("events") == before == SERVER_SEED_ROWS


def test_into_outfile_writes_nothing(server, tmp_path):
    target = tmp_path / "out.csv"
    response = sql(server, f"SELECT * FROM events INTO OUTFILE '{target}' FORMAT CSV")
    assert response.status_code == 400
    assert "INTO OUTFILE is not allowed" in response.json()["error"]
    assert not target.exists()


def test_post_bodies_are_checked_too(server):
    response = requests.post(f"{server.url}/v0/sql", data="SELECT 1; DROP TABLE events",
                             headers=server.admin_headers(), timeout=30)
    assert response.status_code == 400
    assert "Multi-statements are not allowed" in response.json()["error"]
    assert server.count("events") == SERVER_SEED_ROWS


@pytest.mark.parametrize("q,rows", [
    ("WITH a AS (SELECT airline FROM events) SELECT count() AS n FROM a", 1),
    ("SELECT airline FROM events GROUP BY airline UNION ALL SELECT 'extra'", None),
    ("SELECT count() AS n FROM events WHERE airline IN (SELECT airline FROM events LIMIT 1)",
     1),
    ("SELECT e.airline, t.bookings FROM (SELECT airline FROM events LIMIT 1) AS e "
     "JOIN airline_bookings_totals AS t USING airline", None),
    ("SELECT count() AS n FROM default.events", 1),
    ("SELECT count() AS n FROM events_quarantine", 1),
    ("SELECT number FROM numbers(3)", 3),
    ("SELECT 1 EXCEPT SELECT 2", 1),
    ("DESCRIBE events", 12),
    ("SELECT 'a; DROP TABLE events' AS s, 'file(''/etc/passwd'')' AS f FORMAT JSON", 1),
])
def test_legitimate_reads_still_work(server, q, rows):
    response = sql(server, q)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data and (rows is None or len(data) == rows)


def test_unknown_table_is_still_the_engines_answer(server):
    response = sql(server, "SELECT * FROM no_such_table")
    assert response.status_code == 400
    assert "no_such_table" in response.json()["error"]


def test_a_template_branch_chosen_by_the_request_is_checked(server):
    url = f"{server.url}/v0/pipes/two_faced.json"
    fine = requests.get(url, headers=server.admin_headers(), timeout=30)
    assert fine.status_code == 200 and fine.json()["data"] == [{"n": SERVER_SEED_ROWS}]
    hostile = requests.get(url, params={"evil": "1"}, headers=server.admin_headers(), timeout=30)
    assert hostile.status_code == 400
    assert hostile.json()["error"] == "The query uses disabled table functions: 'file'"
    assert "root:" not in hostile.text


@pytest.mark.parametrize("sql_text,reason", [
    ("SELECT * FROM file('/etc/passwd')", "The query uses disabled table functions: 'file'"),
    ("SELECT 1; DROP TABLE events", "Multi-statements are not allowed"),
    ("SELECT * FROM system.tables", "Resource 'system.tables' not found"),
])
def test_a_pipe_node_breaking_the_rules_stops_serve(tmp_path, sql_text, reason):
    project = make_project(tmp_path, {"pipes/bad.pipe": (
        "NODE first\nSQL >\n    SELECT 1 AS one\n\n"
        f"NODE second\nSQL >\n    {sql_text}\n\nTYPE endpoint\n")})
    result = cli("serve", "--project-dir", project, "--data-dir", tmp_path / "d", "--port", 0)
    assert result.returncode == 1
    assert "bad.pipe:5: " in result.stderr and reason in result.stderr
    assert "Traceback" not in result.stderr
