"""Hostile requests: path tricks in names, secrets in error bodies, odd bodies and headers."""

from __future__ import annotations

import json

import pytest
import requests


@pytest.mark.parametrize("path", [
    "/v0/pipes/..%2Fdatasources.json",
    "/v0/pipes/../datasources.json",
    "/v0/pipes/top_airlines%00.json",
    "/v0/pipes/top_airlines.json%00.csv",
    "/v0/pipes/%2e%2e%2f%2e%2e%2fetc%2fpasswd.json",
    "/v0/pipes/events.json",  # a datasource is not a pipe
    "/v0/pipes/system.tables.json",
    "/v0/pipes/top_airlines;DROP TABLE events.json",
])
def test_pipe_names_with_path_tricks_are_refused(server, path):
    before = server.count("events")
    # requests would normalise "..": send the path exactly as written.
    session = requests.Session()
    prepared = requests.Request("GET", f"{server.url}/v0/pipes/x.json",
                                params={"token": server.jwt()}).prepare()
    prepared.url = f"{server.url}{path}?token={server.jwt()}"
    response = session.send(prepared, timeout=30)
    assert response.status_code in (400, 403, 404), response.text
    assert set(response.json()) == {"error", "documentation"}
    assert server.count("events") == before  # the table is still there, untouched


@pytest.mark.parametrize("name", ["../events", "events_quarantine", "system.tables",
                                  "events; DROP TABLE events", "_tb_local_backfills"])
def test_events_api_refuses_names_that_are_not_datasources(server, name):
    response = requests.post(f"{server.url}/v0/events", params={"name": name},
                             data=b'{"a": 1}', headers=server.admin_headers(), timeout=30)
    assert response.status_code == 400
    assert "not found" in response.json()["error"]


def test_no_error_body_contains_the_admin_token(server):
    admin = server.admin_token
    cases = [
        requests.get(f"{server.url}/v0/pipes/top_airlines.json",
                     params={"token": admin + "x"}, timeout=30),
        requests.get(f"{server.url}/v0/pipes/top_airlines.json",
                     headers={"Authorization": f"Bearer {admin[2:]}"}, timeout=30),
        requests.get(f"{server.url}/v0/sql", params={"q": f"SELECT '{admin}' FROM nowhere",
                                                     "token": admin}, timeout=30),
        requests.post(f"{server.url}/v0/events", params={"name": "nope", "token": admin},
                      data=b"{}", timeout=30),
        requests.get(f"{server.url}/v0/pipes/top_airlines.json",
                     params={"token": server.jwt(), "q": admin}, timeout=30),
    ]
    # Two bad tokens, SQL over a missing table, an unknown datasource, and the admin token
    # sent as `q` (SQL over the endpoint's result: not SQL, so a 400 that must not quote it).
    assert [response.status_code for response in cases] == [403, 403, 400, 400, 400]
    for response in cases:
        assert admin not in response.text


def test_wrong_key_jwt_message_does_not_echo_the_token(server):
    import jwt as pyjwt
    forged = pyjwt.encode({"workspace_id": server.workspace.workspace_id, "name": "x",
                           "exp": 4102444800, "scopes": [{"type": "PIPES:READ",
                                                          "resource": "top_airlines"}]},
                          "p." + "z" * 40, algorithm="HS256")
    response = requests.get(f"{server.url}/v0/pipes/top_airlines.json",
                            params={"token": forged}, timeout=30)
    assert response.status_code == 403
    assert forged not in response.text and forged.split(".")[2] not in response.text


def test_malformed_post_bodies_are_400_not_500(server):
    url = f"{server.url}/v0/pipes/airline_top_routes.json"
    token = server.jwt("airline_top_routes")
    for body, content_type in [(b"{not json", "application/json"), (b"[1,2]", "application/json"),
                               (b"\xff\xfe", "application/json")]:
        response = requests.post(url, params={"token": token}, data=body,
                                 headers={"Content-Type": content_type}, timeout=30)
        assert response.status_code == 400, (body, response.text)
        assert "error" in response.json()


def test_events_body_of_odd_shapes_is_quarantined_not_lost(server):
    before = server.count("events_quarantine")
    body = b'[1, 2]\n"just a string"\n{"age": {"nested": true}}\n\n\n'
    response = requests.post(f"{server.url}/v0/events", params={"name": "events",
                                                                "wait": "true"},
                             data=body, headers=server.admin_headers(), timeout=30)
    assert response.status_code == 200
    assert response.json() == {"successful_rows": 0, "quarantined_rows": 3}
    assert server.count("events_quarantine") == before + 3
    reasons = server.sql("SELECT arrayJoin(c__error) AS e FROM events_quarantine")["data"]
    assert any("not a JSON object" in r["e"] for r in reasons)


def test_huge_parameter_values_are_handled(server):
    token = server.jwt("airline_top_routes")
    response = requests.get(f"{server.url}/v0/pipes/airline_top_routes.json",
                            params={"token": token, "airline": "x" * 50_000}, timeout=30)
    assert response.status_code == 200
    assert response.json()["data"] == []


def test_sql_injection_through_int_and_date_functions_is_refused(server):
    token = server.jwt("airline_top_routes")
    for params in [{"limit": "1; DROP TABLE events"}, {"limit": "1 OR 1=1"},
                   {"date_from": "2024-01-01' OR '1'='1"}]:
        response = requests.get(f"{server.url}/v0/pipes/airline_top_routes.json",
                                params={"token": token, "airline": "GAS", **params}, timeout=30)
        assert response.status_code == 400
        assert json.loads(response.text)["error"].startswith("Error validating")


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/v0/no_such_route", 404),
    ("GET", "/etc/passwd", 404),
    ("DELETE", "/v0/sql", 405),
    ("GET", "/v0/events", 405),
    ("PUT", "/v0/pipes/top_airlines.json", 405),
])
def test_unknown_routes_and_wrong_methods_answer_json(server, method, path, status):
    response = requests.request(method, f"{server.url}{path}", headers=server.admin_headers(),
                                timeout=30)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"error", "documentation"}
    assert response.headers["X-Request-ID"]
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    if status == 405:
        assert response.json()["error"] == "Method Not Allowed"
        assert "POST" in response.headers["Allow"]
    else:
        assert response.json()["error"] == "Not Found"
