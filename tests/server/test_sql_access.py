"""/v0/sql for every token, limited to what it may read; pipes read as tables."""

from __future__ import annotations

import time

import jwt
import requests

SERVER_SEED_ROWS, SERVER_SEED = 3000, 5


def sql(server, q, token):
    return requests.get(f"{server.url}/v0/sql", params={"q": q, "token": token}, timeout=30)


def static(server, name, *scopes):
    params = [("name", name), *[("scope", s) for s in scopes]]
    response = requests.post(f"{server.url}/v0/tokens", params=params,
                             headers=server.admin_headers(), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["token"]


def test_datasource_read_token_reads_that_datasource_only(server):
    token = static(server, "events_reader", "DATASOURCES:READ:events")
    response = sql(server, "SELECT count() AS n FROM events", token)
    assert response.status_code == 200, response.text
    assert response.json()["data"][0]["n"] == 3000
    for q in ["SELECT * FROM airline_bookings_totals",
              "SELECT * FROM events JOIN airline_bookings_totals USING airline",
              "SELECT 1 WHERE 'GAS' IN airline_bookings_totals",
              "SELECT * FROM top_airlines"]:
        refused = sql(server, q, token)
        assert refused.status_code == 403, (q, refused.text)
        assert "doesn't have access to this resource" in refused.json()["error"]


def test_pipe_read_token_reads_the_pipe_as_a_table_but_not_its_sources(server):
    token = server.workspace.tokens["top_airlines_read_static"].token
    response = sql(server, "SELECT sum(bookings) AS total, count() AS airlines "
                           "FROM top_airlines", token)
    assert response.status_code == 200, response.text
    assert response.json()["data"][0] == {"total": 3000, "airlines": 7}
    assert sql(server, "SELECT count() FROM events", token).status_code == 403
    assert sql(server, "SELECT * FROM airline_bookings_totals", token).status_code == 403


def test_pipe_read_by_id_and_with_ctes_and_unions(server):
    token = server.workspace.tokens["top_airlines_read_static"].token
    pipe_id = server.workspace.pipe_id("top_airlines")
    by_id = sql(server, f"SELECT count() AS n FROM {pipe_id}", token)
    assert by_id.status_code == 200, by_id.text
    assert by_id.json()["data"][0]["n"] == 7
    q = ("WITH best AS (SELECT airline FROM top_airlines ORDER BY bookings DESC LIMIT 1) "
         "SELECT count() AS n FROM best UNION ALL SELECT count() FROM top_airlines")
    response = sql(server, q, token)
    assert response.status_code == 200, response.text
    assert sorted(r["n"] for r in response.json()["data"]) == [1, 7]


def test_admin_reads_pipes_and_datasources(server):
    body = server.sql("SELECT sum(bookings) AS total FROM top_airlines")
    assert body["data"][0]["total"] == 3000
    assert server.count("events") >= 3000


def test_jwt_reads_its_pipe_with_fixed_params_applied(server):
    token = server.jwt("top_airlines", fixed_params={"meal_choice": "vegan"})
    response = sql(server, "SELECT sum(bookings) AS total FROM top_airlines", token)
    assert response.status_code == 200, response.text
    vegan = server.sql("SELECT count() AS n FROM events WHERE meal_choice = 'vegan'")
    assert response.json()["data"][0]["total"] == vegan["data"][0]["n"] < 3000
    assert sql(server, "SELECT count() FROM events", token).status_code == 403
    assert sql(server, "SELECT * FROM airline_daily_bookings", token).status_code == 403


def test_datasource_filter_scopes_read_the_filtered_rows_only(server):
    token = static(server, "gas_reader", "DATASOURCES:READ:events:airline = 'GAS'")
    response = sql(server, "SELECT count() AS n, uniqExact(airline) AS airlines FROM events",
                   token)
    assert response.status_code == 200, response.text
    gas = server.sql("SELECT count() AS n FROM events WHERE airline = 'GAS'")["data"][0]["n"]
    assert response.json()["data"][0] == {"n": gas, "airlines": 1}
    # A qualified name would bypass the filter: refused.
    database = server.sql("SELECT currentDatabase() AS db")["data"][0]["db"]
    assert sql(server, f"SELECT count() FROM {database}.events", token).status_code == 403


def test_jwt_datasource_scope_with_filter(server):
    claims = {"workspace_id": server.workspace.workspace_id, "name": "ds_jwt",
              "exp": int(time.time()) + 600,
              "scopes": [{"type": "DATASOURCES:READ", "resource": "events",
                          "filter": "meal_choice = 'kosher'"}]}
    token = jwt.encode(claims, server.admin_token, algorithm="HS256")
    response = sql(server, "SELECT uniqExact(meal_choice) AS meals FROM events", token)
    assert response.status_code == 200, response.text
    assert response.json()["data"][0]["meals"] == 1


def test_guard_rules_still_apply_to_every_token(server):
    token = static(server, "guarded", "DATASOURCES:READ:events")
    for q in ["SELECT * FROM system.tables", "DROP TABLE events",
              "SELECT * FROM file('/etc/passwd')", "SELECT 1; DROP TABLE events"]:
        response = sql(server, q, token)
        assert response.status_code == 400, (q, response.text)
    assert server.count("events") >= 3000


def test_other_formats_and_post(server):
    token = server.workspace.tokens["top_airlines_read_static"].token
    response = sql(server, "SELECT airline FROM top_airlines ORDER BY airline FORMAT CSV", token)
    assert response.status_code == 200, response.text
    assert len(response.text.strip().splitlines()) == 7
    posted = requests.post(f"{server.url}/v0/sql", data="SELECT count() AS n FROM top_airlines",
                           headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert posted.status_code == 200 and posted.json()["data"][0]["n"] == 7
